// A drawer: a side panel opened by its button, closed by its ×, by Esc, or when another drawer opens.
const drawers = new Set();

export class Drawer {
  /** onOpen(): fill it (it may have been out of date while closed). */
  constructor(panel, button, onOpen) {
    Object.assign(this, { panel, button, onOpen });
    drawers.add(this);
    button.addEventListener('click', () => (panel.hidden ? this.open() : this.close()));
    panel.querySelector('.close').addEventListener('click', () => this.close());
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !panel.hidden && !document.querySelector('dialog[open]')) this.close();
    });
  }

  open() {
    for (const other of drawers) if (other !== this) other.close();
    this.panel.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    this.onOpen();
  }

  close() {
    this.panel.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
  }
}

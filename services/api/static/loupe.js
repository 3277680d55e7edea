// The loupe: one photo large (its 2048 px preview, fitted or at 100%), moved through in the grid's
// order with ←/→, buttons or a swipe, culled with the same keys as the grid, with the camera's line.
import { projectPath } from './api.js';
import { cameraTime, h } from './dom.js';
import { ACTIONS, flagsFor, state, variants } from './photo.js';
import { toastsInto } from './toasts.js';

const SWIPE_PX = 60;

export class Loupe {
  /** act(filename, action) and toggle(filename, kind) save a decision; undo() → the filename it undid. */
  constructor(dialog, { grid, folder, act, toggle, undo, help, settings }) {
    Object.assign(this, { dialog, grid, folder, act, toggle, undo, help, settings });
    this.filename = null;
    this.index = 0;
    this.zoomed = false;
    const $ = (selector) => dialog.querySelector(selector);
    this.el = {
      name: $('.loupe-name'), position: $('.loupe-position'), flag: $('.flag.state'), exif: $('.loupe-exif'),
      stage: $('.loupe-stage'), picture: $('.loupe-picture'), variants: $('.loupe-variants'), zoom: $('.zoom'),
      advance: $('input[name="advance"]'), prev: $('.nav.prev'), next: $('.nav.next'),
    };
    this.el.advance.checked = settings.advance;
    this.el.advance.addEventListener('change', () => settings.setAdvance(this.el.advance.checked));
    $('.close').addEventListener('click', () => dialog.close());
    $('.help').addEventListener('click', () => help());
    this.el.zoom.addEventListener('click', () => this.zoom(!this.zoomed));
    this.el.prev.addEventListener('click', () => this.step(-1));
    this.el.next.addEventListener('click', () => this.step(1));
    for (const button of dialog.querySelectorAll('[data-action]')) {
      button.addEventListener('click', () => this.decide(button.dataset.action));
    }
    $('.undo').addEventListener('click', () => this.takeBack());
    dialog.addEventListener('keydown', (event) => this.key(event));
    dialog.addEventListener('close', () => {
      toastsInto(null);
      this.el.picture.replaceChildren();
      if (this.filename) this.grid.activate(this.filename, true);
      this.filename = null;
    });
    this.pointer(this.el.stage);
    // Toasts shown here sit above the buttons, whatever height they wrap to.
    const actions = $('.loupe-actions');
    new ResizeObserver(() => dialog.style.setProperty('--actions', `${actions.offsetHeight}px`)).observe(actions);
  }

  get isOpen() {
    return this.dialog.open;
  }

  open(filename) {
    if (!this.dialog.open) {
      this.dialog.showModal();
      this.el.stage.focus();  // the keys act on the photo; no button looks chosen
      toastsInto(this.dialog);  // its Undo within reach
    }
    this.show(filename);
  }

  /** Show this photo (in the grid's current order). */
  show(filename) {
    const photo = this.grid.photos.get(filename);
    if (!photo) return;
    const shown = this.grid.visible();
    const changed = filename !== this.filename;
    this.filename = filename;
    this.index = Math.max(0, shown.indexOf(filename));
    if (changed) {
      this.zoom(false);
      this.picture(photo, null);
      this.preload(shown);
    }
    this.render(photo);
  }

  /** The grid changed this photo (SSE, a decision): show what is true now. */
  update(filename, before) {
    if (!this.dialog.open || filename !== this.filename) return;
    const photo = this.grid.photos.get(filename);
    if (!photo) {
      this.step(0);  // gone (committed elsewhere): the next one takes its place
      return;
    }
    this.picture(photo, before);
    this.render(photo);
  }

  /** Move by `by` photos in the grid's order; 0 when the photo shown left it. */
  step(by) {
    const shown = this.grid.visible();
    if (!shown.length) {
      this.dialog.close();
      return;
    }
    const at = shown.indexOf(this.filename);
    const index = at === -1 ? Math.min(this.index, shown.length - 1) : at + by;
    if (index < 0 || index >= shown.length) return;
    this.show(shown[index]);
  }

  async decide(action) {
    const filename = this.filename;
    const photo = this.grid.photos.get(filename);
    if (!photo || !flagsFor(photo, action)) return;
    const saved = this.act(filename, action);
    if (this.settings.advance) this.step(1);
    await saved.catch(() => {});
  }

  async flip(kind) {
    const photo = this.grid.photos.get(this.filename);
    if (!photo || !variants(photo).some((v) => v.kind === kind && v.cullable)) return;
    await this.toggle(this.filename, kind).catch(() => {});
  }

  async takeBack() {
    const filename = await this.undo().catch(() => null);
    if (filename && this.dialog.open) this.show(filename);
  }

  render(photo) {
    const shown = this.grid.visible();
    this.el.name.textContent = photo.filename;
    this.el.position.textContent = shown.includes(photo.filename)
      ? `${shown.indexOf(photo.filename) + 1} of ${shown.length}` : `not in the ${shown.length} shown`;
    const culled = state(photo);
    this.el.flag.hidden = culled === 'kept';
    this.el.flag.textContent = culled === 'dropped' ? 'Drop'
      : `Drop ${variants(photo).filter((v) => v.cullable && !v.keep).map((v) => v.label).join(' + ')}`;
    this.dialog.classList.toggle('dropped', culled === 'dropped');
    this.el.exif.textContent = exifLine(photo);
    this.el.prev.disabled = shown.indexOf(photo.filename) <= 0;
    this.el.next.disabled = shown.indexOf(photo.filename) >= shown.length - 1;
    const all = variants(photo);
    this.el.variants.replaceChildren(...all.map((v) => h('button', {
      type: 'button', class: `variant ${v.keep ? '' : 'dropped'}`, 'aria-pressed': String(v.keep),
      disabled: !v.cullable, title: v.cullable ? `Keep the ${v.label}` : `${v.label}: kept`,
      'aria-label': `Keep ${v.label}`, onclick: () => this.flip(v.kind),
    }, h('span', {}, v.label))));
    for (const button of this.dialog.querySelectorAll('[data-action]')) {
      const flags = flagsFor(photo, button.dataset.action);
      button.hidden = button.dataset.action !== 'keep' && button.dataset.action !== 'drop' && all.filter((v) => v.cullable).length < 2;
      button.disabled = !flags || Object.entries(flags).every(([key, value]) => photo[key] === value);
    }
  }

  /** The preview when it exists, else the thumbnail, else what is happening; a new src only when new. */
  picture(photo, before) {
    const source = photo.preview_status === 'generated' ? 'preview'
      : photo.thumbnail_status === 'generated' ? 'thumbnail' : null;
    const current = this.el.picture.dataset;
    if (before && current.source === (source ?? '') && before[`${source}_status`] === 'generated') return;
    current.source = source ?? '';
    if (!source) {
      const words = photo.preview_status === 'pending' ? 'The preview is being made…'
        : photo.raw_available && !photo.jpg_available ? 'No preview for this RAW' : `No preview (${photo.preview_status})`;
      this.el.picture.replaceChildren(h('p', { class: 'loupe-missing' }, words));
      return;
    }
    const img = h('img', { src: this.url(photo, source), alt: photo.filename, draggable: 'false' });
    img.addEventListener('error', () => this.el.picture.replaceChildren(h('p', { class: 'loupe-missing' }, 'The preview could not be loaded')), { once: true });
    this.el.picture.replaceChildren(img);
  }

  url(photo, which) {
    return `${projectPath(this.folder, `/${which}/${encodeURIComponent(photo.filename)}`)}?v=${encodeURIComponent(photo.updated_at)}`;
  }

  preload(shown) {
    for (const filename of [shown[this.index + 1], shown[this.index - 1]]) {
      const photo = filename && this.grid.photos.get(filename);
      if (photo?.preview_status === 'generated') new Image().src = this.url(photo, 'preview');
    }
  }

  /** Fit the screen, or 100%, centred on a point of the picture (fractions of its width and height). */
  zoom(on, at = { x: 0.5, y: 0.5 }) {
    this.zoomed = on;
    this.dialog.classList.toggle('zoomed', on);
    this.el.zoom.textContent = on ? 'Fit' : '100%';
    this.el.zoom.setAttribute('aria-pressed', String(on));
    const img = this.el.picture.querySelector('img');
    if (on && img) {
      const stage = this.el.stage;
      stage.scrollLeft = at.x * img.naturalWidth - stage.clientWidth / 2;
      stage.scrollTop = at.y * img.naturalHeight - stage.clientHeight / 2;
    }
  }

  /** Click: zoom there or back; drag: pan at 100%; a sideways swipe: the next or previous photo. */
  pointer(stage) {
    let start = null;
    stage.addEventListener('pointerdown', (event) => {
      if (event.target.closest('button') || event.button !== 0) return;
      start = { x: event.clientX, y: event.clientY, left: stage.scrollLeft, top: stage.scrollTop, moved: false };
      stage.setPointerCapture(event.pointerId);
    });
    stage.addEventListener('pointermove', (event) => {
      if (!start) return;
      const dx = event.clientX - start.x;
      const dy = event.clientY - start.y;
      if (Math.abs(dx) + Math.abs(dy) > 6) start.moved = true;
      if (this.zoomed) {
        stage.scrollLeft = start.left - dx;
        stage.scrollTop = start.top - dy;
      }
    });
    stage.addEventListener('pointerup', (event) => {
      if (!start) return;
      const dx = event.clientX - start.x;
      const dy = event.clientY - start.y;
      const { moved } = start;
      start = null;
      if (!moved) {
        // The stage holds the pointer (capture), so the picture is found where the click was.
        const img = this.el.picture.querySelector('img');
        const box = img?.getBoundingClientRect();
        if (!box || event.clientX < box.left || event.clientX > box.right || event.clientY < box.top || event.clientY > box.bottom) return;
        this.zoom(!this.zoomed, { x: (event.clientX - box.left) / box.width, y: (event.clientY - box.top) / box.height });
      } else if (!this.zoomed && Math.abs(dx) > SWIPE_PX && Math.abs(dx) > 2 * Math.abs(dy)) {
        this.step(dx < 0 ? 1 : -1);
      }
    });
    stage.addEventListener('pointercancel', () => { start = null; });
  }

  key(event) {
    if (event.altKey || event.metaKey || event.target.closest('input, select')) return;
    const action = actionOf(event);
    if (event.ctrlKey) {
      if (event.key === 'z') this.takeBack();
      else return;
    } else if (event.key === 'ArrowRight') this.step(1);
    else if (event.key === 'ArrowLeft') this.step(-1);
    else if (event.key === 'Home') this.step(-this.index);
    else if (event.key === 'End') this.step(this.grid.visible().length);
    else if (event.key === 'z' || event.key === 'Z') this.zoom(!this.zoomed);
    else if (event.key === 'u') this.takeBack();
    else if (event.key === 'o') this.flip('other');
    else if (event.key === '?') this.help();
    else if (action) this.decide(action);
    else return;
    event.preventDefault();
  }
}

/** The culling action a key means, or null. */
export function actionOf(event) {
  if (event.ctrlKey || event.altKey || event.metaKey) return null;
  return Object.entries(ACTIONS).find(([, a]) => a.keys.includes(event.key))?.[0] ?? null;
}

/** "Canon EOS 40D · EF 24-70mm · 2008-05-30 15:56 · 3888 × 2592" */
export function exifLine(photo) {
  const model = photo.model ?? '';
  const camera = photo.make && !model.toLowerCase().startsWith(photo.make.toLowerCase().split(' ')[0])
    ? `${photo.make} ${model}`.trim() : model;
  return [camera, photo.lens, cameraTime(photo.taken_at),
    photo.width && photo.height ? `${photo.width} × ${photo.height}` : null].filter(Boolean).join(' · ');
}

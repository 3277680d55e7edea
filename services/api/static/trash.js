// The trash drawer: what Commit moved to the project's trash, when each file goes for good, Restore.
import { get, post, projectPath } from './api.js';
import { bytes, count, h, span } from './dom.js';
import { Drawer } from './drawer.js';
import { toast } from './toasts.js';

export class Trash {
  constructor({ folder, panel, button, ttl }) {
    Object.assign(this, { folder, panel, button });
    this.entries = [];
    this.list = panel.querySelector('.trash-list');
    this.badge = button.querySelector('.badge');
    this.restoreAll = panel.querySelector('.restore-all');
    panel.querySelector('.panel-note').textContent = ttl > 0
      ? `Files removed by Commit stay here for ${span(ttl)}, then they are deleted for good.`
      : 'Files removed by Commit are deleted for good at the next maintenance.';
    new Drawer(panel, button, () => this.load());
    this.restoreAll.addEventListener('click', () => this.restore(this.entries.map((e) => e.name), this.restoreAll));
    // "Goes in 3 h" moves on by itself.
    setInterval(() => { if (!panel.hidden) this.draw(); }, 60_000);
  }

  async load() {
    try {
      ({ trash: this.entries } = await get(projectPath(this.folder, '/trash')));
    } catch (error) {
      if (!this.panel.hidden) toast('Could not read the trash', { kind: 'error', detail: error.message });
      return;
    }
    this.entries.sort((a, b) => (a.expires_at < b.expires_at ? -1 : a.expires_at > b.expires_at ? 1 : 0));
    this.draw();
  }

  draw() {
    const n = this.entries.length;
    this.badge.textContent = String(n);
    this.badge.hidden = !n;
    this.restoreAll.disabled = !n;
    if (!n) {
      this.list.replaceChildren(h('li', { class: 'empty' }, 'The trash is empty.'));
      return;
    }
    // A sidecar (.xmp) comes back with its file: shown on that file's line.
    const sidecars = new Map();
    const shown = this.entries.filter((entry) => {
      if (!/\.xmp$/i.test(entry.original)) return true;
      const owner = this.entries.find((e) => e !== entry && e.trashed_at === entry.trashed_at
        && [e.original, e.filename].includes(entry.original.slice(0, -4)));
      if (owner) sidecars.set(owner, [...(sidecars.get(owner) ?? []), entry.original]);
      return !owner;
    });
    this.list.replaceChildren(...shown.map((entry) => {
      const restore = h('button', { type: 'button', class: 'small', 'aria-label': `Restore ${entry.original}` }, 'Restore');
      restore.addEventListener('click', () => this.restore([entry.name], restore));
      const left = (Date.parse(entry.expires_at) - Date.now()) / 1000;
      return h('li', { class: 'trash-entry', dataset: { name: entry.name } },
        h('span', { class: 'trash-name', title: entry.name }, entry.original,
          sidecars.has(entry) ? h('span', { class: 'muted' }, ` + ${sidecars.get(entry).join(', ')}`) : null),
        h('span', { class: 'trash-size muted' }, bytes(entry.size)),
        h('span', { class: 'trash-when muted', title: `Deleted for good at ${new Date(entry.expires_at).toLocaleString()}` },
          left > 0 ? `goes in ${span(left)}` : 'goes at the next maintenance'),
        restore);
    }));
  }

  async restore(names, button) {
    if (!names.length) return;
    button.disabled = true;
    try {
      const { restored } = await post(projectPath(this.folder, '/trash/restore'), { names });
      toast(`Restored ${count(restored.length, 'file')}`, { kind: 'success', detail: restored.length <= 3 ? restored.join(', ') : null });
    } catch (error) {
      toast('Could not restore', { kind: 'error', detail: error.message });
    } finally {
      button.disabled = false;
      await this.load();
    }
  }
}

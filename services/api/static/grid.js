// The photo grid: one fixed-size card per photo with its thumbnail (or a placeholder), a badge when it
// will be dropped or is new, and its variants' keep toggles. Filtered and sorted on the page; moved
// through with the arrow keys (one card in the tab order at a time). Fed by GET, SSE `item` and the
// culler's optimistic patches.
import { projectPath } from './api.js';
import { h } from './dom.js';
import { ORDERS, matches, state, variants } from './photo.js';

const PLACEHOLDER = {
  pending: 'Processing',
  missing: 'File missing',
  failed: 'Thumbnail failed',
  not_supported: 'No preview',
};

const RETRIES = 5;  // a thumbnail that does not load, over about a minute

export const ALL = { status: 'all', type: 'all', orientation: 'all', day: 'all', sort: 'time' };

export class Grid {
  /**
   * onToggle(filename, kind): a variant's box was clicked; onOpen(filename): look at it large;
   * onKey(filename, event) → true when the key was a culling key it handled; onChange(): counts changed;
   * onPhoto(filename, before): one photo changed or left (the loupe follows); onSelect(): the selection
   * (what Regenerate and Move act on) changed.
   */
  constructor(list, { folder, onToggle, onOpen, onKey, onChange, onPhoto, onSelect = () => {} }) {
    Object.assign(this, { list, folder, onToggle, onOpen, onKey, onChange, onPhoto, onSelect });
    this.selected = new Set();  // filenames
    this.photos = new Map();  // filename → photo
    this.cards = new Map();   // filename → <li>, in the list in `order`
    this.order = [];          // filenames, sorted by view.sort (filtered ones stay, hidden)
    this.view = { ...ALL };
    this.fresh = new Set();   // arrived while the page was open: highlighted as new
    this.seen = new Set();    // every photo shown since the page opened: one back from the trash is not new
    this.active = null;       // the card in the tab order
    this.loaded = false;
    list.addEventListener('keydown', (event) => this.key(event));
    list.addEventListener('focusin', (event) => {
      const card = event.target.closest('li.photo');
      if (card) this.activate(card.dataset.filename);
    });
  }

  get size() {
    return this.photos.size;
  }

  /** The filenames shown, in their order: what the loupe and the arrow keys move through. */
  visible() {
    return this.order.filter((filename) => !this.cards.get(filename).hidden);
  }

  /** Replace everything (first load, `reset`). */
  setAll(photos) {
    for (const card of this.cards.values()) card.remove();
    this.photos = new Map(photos.map((photo) => [photo.filename, photo]));
    for (const photo of photos) this.seen.add(photo.filename);
    this.cards = new Map();
    for (const filename of [...this.selected]) if (!this.photos.has(filename)) this.selected.delete(filename);
    const active = this.active;
    this.active = null;  // its card is new: it takes the tab order again below
    for (const photo of photos) this.render(photo, null);
    this.sort();
    this.loaded = true;
    if (this.cards.has(active)) this.activate(active);
    this.changed();
  }

  /** An SSE `item`: a newer state of one photo (an older one, from before a refetch, is ignored). */
  upsert(photo) {
    const known = this.photos.get(photo.filename);
    if (known && photo.updated_at < known.updated_at) return;
    if (!known && this.loaded && !this.seen.has(photo.filename)) this.fresh.add(photo.filename);
    this.seen.add(photo.filename);
    this.photos.set(photo.filename, photo);
    this.render(photo, known);
    if (!known || ORDERS[this.view.sort](known, photo) !== 0) this.place(photo.filename);
    this.changed();
    this.onPhoto(photo.filename, known);
  }

  /** Flags set here before the server has said so (the culler); the SSE item that follows agrees. */
  patch(filename, flags) {
    const known = this.photos.get(filename);
    if (!known) return;
    const photo = { ...known, ...flags };
    this.photos.set(filename, photo);
    this.render(photo, known);
    this.changed();
    this.onPhoto(filename, known);
  }

  remove(filename) {
    const card = this.cards.get(filename);
    if (!card) return;
    const next = this.neighbour(filename);
    card.remove();
    this.cards.delete(filename);
    this.photos.delete(filename);
    this.order.splice(this.order.indexOf(filename), 1);
    if (this.active === filename) this.activate(next, card.contains(document.activeElement));
    if (this.selected.delete(filename)) this.onSelect();
    this.changed();
    this.onPhoto(filename, null);
  }

  /** Select the photo, or unselect it (`on`: which; default the other way round). */
  select(filename, on = !this.selected.has(filename)) {
    const card = this.cards.get(filename);
    if (!card) return;
    if (on) this.selected.add(filename);
    else this.selected.delete(filename);
    card.classList.toggle('selected', on);
    card.querySelector('.select input').checked = on;
    this.onSelect();
  }

  clearSelection() {
    for (const filename of [...this.selected]) this.select(filename, false);
  }

  setView(view) {
    const resort = view.sort !== this.view.sort;
    this.view = { ...this.view, ...view };
    if (resort) this.sort();
    for (const [filename, card] of this.cards) card.hidden = !matches(this.photos.get(filename), this.view);
    this.changed();
  }

  sort() {
    const cmp = ORDERS[this.view.sort];
    this.order = [...this.photos.values()].sort(cmp).map((photo) => photo.filename);
    this.list.append(...this.order.map((filename) => this.cards.get(filename)));
  }

  place(filename) {
    const index = this.order.indexOf(filename);
    if (index >= 0) this.order.splice(index, 1);
    const cmp = ORDERS[this.view.sort];
    const photo = this.photos.get(filename);
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cmp(this.photos.get(this.order[mid]), photo) < 0) lo = mid + 1;
      else hi = mid;
    }
    this.order.splice(lo, 0, filename);
    const next = this.cards.get(this.order[lo + 1]) ?? null;
    const card = this.cards.get(filename);
    if (card.nextElementSibling !== next || card.parentNode !== this.list) this.list.insertBefore(card, next);
  }

  changed() {
    // New among others only: when every photo is new (a first upload), a mark would tell nothing.
    this.list.classList.toggle('all-new', this.fresh.size > 0 && this.fresh.size >= this.photos.size);
    if (this.active == null || !this.cards.has(this.active) || this.cards.get(this.active).hidden) {
      this.activate(this.visible()[0] ?? null);
    }
    this.onChange();
  }

  render(photo, before) {
    let card = this.cards.get(photo.filename);
    if (!card) {
      card = h('li', { class: 'photo', tabindex: '-1', dataset: { filename: photo.filename } },
        h('div', { class: 'thumb', title: `Open ${photo.filename}`, onclick: () => this.onOpen(photo.filename) },
          h('div', { class: 'picture' }),
          h('span', { class: 'flag state', hidden: true }),
          h('span', { class: 'flag new', hidden: true }, 'New')),
        h('div', { class: 'caption' },
          h('span', { class: 'name', title: photo.filename }, photo.filename),
          h('span', { class: 'camera' })),
        h('div', { class: 'variants' }),
        h('label', { class: 'select', title: 'Select (S)' }, h('input', {
          type: 'checkbox', tabindex: '-1', 'aria-label': `Select ${photo.filename}`,
          onchange: (event) => this.select(photo.filename, event.target.checked),
        })));
      this.cards.set(photo.filename, card);
    }
    const selected = this.selected.has(photo.filename);
    card.classList.toggle('selected', selected);
    card.querySelector('.select input').checked = selected;
    this.renderThumb(card, photo, before);
    this.renderVariants(card, photo);
    card.querySelector('.camera').textContent = photo.model ?? '';
    const culled = state(photo);
    card.classList.toggle('pending', culled !== 'kept');
    card.classList.toggle('dropped', culled === 'dropped');
    card.classList.toggle('new', this.fresh.has(photo.filename));
    card.querySelector('.flag.new').hidden = !this.fresh.has(photo.filename);
    const flag = card.querySelector('.flag.state');
    flag.hidden = culled === 'kept';
    flag.textContent = culled === 'dropped' ? 'Drop'
      : `Drop ${variants(photo).filter((v) => v.cullable && !v.keep).map((v) => v.label).join(' + ')}`;
    card.setAttribute('aria-label', `${photo.filename}${culled === 'kept' ? '' : ` (${flag.textContent.toLowerCase()})`}`);
    card.hidden = !matches(photo, this.view);
  }

  renderThumb(card, photo, before) {
    const box = card.querySelector('.picture');
    const img = box.querySelector('img');
    if (photo.thumbnail_status === 'generated') {
      // A new src only when the thumbnail itself is new: keep toggles change updated_at too.
      if (img && before?.thumbnail_status === 'generated') return;
      const url = `${projectPath(this.folder, `/thumbnail/${encodeURIComponent(photo.filename)}`)}?v=${encodeURIComponent(photo.updated_at)}`;
      box.replaceChildren(this.image(box, url, photo, 0));
      return;
    }
    const current = box.firstElementChild;
    if (!img && current?.dataset.status === photo.thumbnail_status) return;
    box.replaceChildren(placeholder(photo.thumbnail_status, photo));
  }

  /** The thumbnail; one that does not load (the network went away) is tried again a few times. */
  image(box, url, photo, tries) {
    const image = h('img', { src: url, alt: photo.filename, loading: 'lazy', decoding: 'async' });
    image.addEventListener('error', () => {
      if (!image.isConnected) return;
      box.replaceChildren(placeholder(tries < RETRIES ? 'pending' : 'failed', photo));
      if (tries < RETRIES) {
        setTimeout(() => {
          if (box.isConnected && box.querySelector('.placeholder')) box.replaceChildren(this.image(box, url, photo, tries + 1));
        }, 1000 * 2 ** tries);
      }
    }, { once: true });
    return image;
  }

  renderVariants(card, photo) {
    const box = card.querySelector('.variants');
    const all = variants(photo);
    const shape = all.map((v) => `${v.kind}:${v.label}:${v.cullable}`).join(' ');
    if (box.dataset.shape !== shape) {
      box.dataset.shape = shape;
      box.replaceChildren(...all.map((v) => (v.cullable ? this.toggle(photo.filename, v)
        : h('span', { class: 'variant other', title: `${v.label}: kept` }, v.label))));
    }
    const tabbable = this.active === photo.filename ? '0' : '-1';
    for (const v of all.filter((x) => x.cullable)) {
      const input = box.querySelector(`input[data-kind="${v.kind}"]`);
      input.checked = v.keep;
      input.tabIndex = tabbable;
      input.closest('label').classList.toggle('dropped', !v.keep);
    }
  }

  toggle(filename, { kind, label }) {
    const input = h('input', { type: 'checkbox', dataset: { kind }, 'aria-label': `Keep ${label} of ${filename}` });
    input.addEventListener('change', async () => {
      input.checked = !input.checked;  // what is true until the culler says otherwise (it patches at once)
      await this.onToggle(filename, kind).catch(() => {});
    });
    return h('label', { class: 'variant', title: `Keep the ${label}` }, input, h('span', {}, label));
  }

  /** The card in the tab order (roving tabindex); `focus` moves the keyboard focus there too. */
  activate(filename, focus = false) {
    if (this.active !== filename) {
      const old = this.cards.get(this.active);
      if (old) {
        old.tabIndex = -1;
        for (const input of old.querySelectorAll('input')) input.tabIndex = -1;
      }
      this.active = filename;
      const card = this.cards.get(filename);
      if (card) {
        card.tabIndex = 0;
        for (const input of card.querySelectorAll('input')) input.tabIndex = 0;
      }
    }
    if (focus) this.cards.get(filename)?.focus();
  }

  /** Move the focus by `step` shown cards (a row is as many cards as fit across). */
  move(step, from = this.active) {
    const shown = this.visible();
    if (!shown.length) return;
    const at = Math.max(0, shown.indexOf(from));
    this.activate(shown[Math.min(shown.length - 1, Math.max(0, at + step))], true);
  }

  columns() {
    const shown = this.visible().map((filename) => this.cards.get(filename));
    const top = shown[0]?.offsetTop;
    const n = shown.findIndex((card) => card.offsetTop !== top);
    return n === -1 ? shown.length : n;
  }

  /** The shown card after this one (or before, at the end): where the focus goes when it leaves. */
  neighbour(filename) {
    const shown = this.visible();
    const at = shown.indexOf(filename);
    return shown[at + 1] ?? shown[at - 1] ?? null;
  }

  key(event) {
    const card = event.target.closest('li.photo');
    if (!card || event.altKey || event.ctrlKey || event.metaKey) return;
    const filename = card.dataset.filename;
    const steps = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: this.columns(), ArrowUp: -this.columns(),
      PageDown: this.columns() * 3, PageUp: -this.columns() * 3, Home: -Infinity, End: Infinity };
    if (event.key in steps) {
      this.move(Number.isFinite(steps[event.key]) ? steps[event.key] : Math.sign(steps[event.key]) * this.size, filename);
    } else if (event.key === 'Enter' && event.target === card) {
      this.onOpen(filename);
    } else if (event.target !== card || !this.onKey(filename, event)) {
      return;
    }
    event.preventDefault();
  }
}

function placeholder(status, photo) {
  const rawOnly = photo.raw_available && !photo.jpg_available && !photo.other_available;
  const label = rawOnly && status !== 'pending' ? 'RAW only' : (PLACEHOLDER[status] ?? status);
  return h('div', {
    class: `placeholder ${status}`, role: 'img', 'aria-label': `${photo.filename}: ${label}`,
    title: status === 'failed' && photo.error ? photo.error : label, dataset: { status },
  },
  status === 'pending' ? h('span', { class: 'spinner', 'aria-hidden': 'true' }) : h('span', {}, label));
}

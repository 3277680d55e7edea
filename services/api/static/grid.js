// The photo grid: one card per photo, ordered like the API (taken_at, then filename), with its
// thumbnail (or a placeholder) and its variants' keep toggles. Fed by GET and by SSE `item`.
import { projectPath } from './api.js';
import { h } from './dom.js';

const PLACEHOLDER = {
  pending: 'Processing',
  missing: 'File missing',
  failed: 'Thumbnail failed',
  not_supported: 'No preview',
};

const OTHER = /\.(png|tiff?|heic|heif|webp)$/i;

function order(a, b) {
  const key = (p) => [p.taken_at == null ? 1 : 0, p.taken_at ?? '', p.filename];
  const [x, y] = [key(a), key(b)];
  for (let i = 0; i < x.length; i += 1) {
    if (x[i] < y[i]) return -1;
    if (x[i] > y[i]) return 1;
  }
  return 0;
}

export class Grid {
  /** onKeep(filename, kind, keep) → Promise; it rejects when the server refused. */
  constructor(list, { folder, onKeep, onChange }) {
    Object.assign(this, { list, folder, onKeep, onChange });
    this.photos = new Map();  // filename → photo
    this.cards = new Map();   // filename → <li>
  }

  get size() {
    return this.photos.size;
  }

  /** Replace everything (first load, `reset`). */
  setAll(photos) {
    for (const filename of [...this.photos.keys()]) this.drop(filename);
    for (const photo of photos) this.put(photo, true);
    this.onChange();
  }

  /** An SSE `item`: a newer state of one photo (an older one, from before a refetch, is ignored). */
  upsert(photo) {
    const known = this.photos.get(photo.filename);
    if (known && photo.updated_at < known.updated_at) return;
    this.put(photo, false);
    this.onChange();
  }

  remove(filename) {
    this.drop(filename);
    this.onChange();
  }

  drop(filename) {
    this.cards.get(filename)?.remove();
    this.cards.delete(filename);
    this.photos.delete(filename);
  }

  put(photo, appendOnly) {
    const before = this.photos.get(photo.filename);
    this.photos.set(photo.filename, photo);
    let card = this.cards.get(photo.filename);
    if (!card) {
      card = h('li', { class: 'photo', dataset: { filename: photo.filename } },
        h('div', { class: 'thumb' }),
        h('div', { class: 'caption' },
          h('span', { class: 'name', title: photo.filename }, photo.filename),
          h('span', { class: 'camera' })),
        h('div', { class: 'variants' }));
      this.cards.set(photo.filename, card);
    }
    this.renderThumb(card, photo, before);
    this.renderVariants(card, photo);
    card.querySelector('.camera').textContent = photo.model ?? '';
    card.classList.toggle('pending', (photo.jpg_available && !photo.keep_jpg) || (photo.raw_available && !photo.keep_raw));
    if (appendOnly) this.list.append(card);
    else if (!before || order(before, photo) !== 0) this.place(card, photo);
  }

  place(card, photo) {
    // The first card that sorts after this photo; cards are few enough to look through.
    const next = [...this.list.children].find((el) => {
      const other = this.photos.get(el.dataset.filename);
      return el !== card && other && order(photo, other) < 0;
    });
    this.list.insertBefore(card, next ?? null);
  }

  renderThumb(card, photo, before) {
    const box = card.querySelector('.thumb');
    const img = box.querySelector('img');
    if (photo.thumbnail_status === 'generated') {
      // A new src only when the thumbnail itself is new: keep toggles change updated_at too.
      if (img && before?.thumbnail_status === 'generated') return;
      const url = `${projectPath(this.folder, `/thumbnail/${encodeURIComponent(photo.filename)}`)}?v=${encodeURIComponent(photo.updated_at)}`;
      const image = h('img', { src: url, alt: photo.filename, loading: 'lazy', decoding: 'async' });
      image.addEventListener('error', () => box.replaceChildren(placeholder('failed', photo)), { once: true });
      box.replaceChildren(image);
      return;
    }
    const current = box.firstElementChild;
    if (!img && current?.dataset.status === photo.thumbnail_status) return;
    box.replaceChildren(placeholder(photo.thumbnail_status, photo));
  }

  renderVariants(card, photo) {
    const box = card.querySelector('.variants');
    const wanted = [];
    if (photo.jpg_available) wanted.push('jpg');
    if (photo.raw_available) wanted.push('raw');
    const others = photo.files.filter((name) => OTHER.test(name)).map((name) => name.split('.').pop().toUpperCase());
    const shape = [...wanted, ...others].join(' ');
    if (box.dataset.shape !== shape) {
      box.dataset.shape = shape;
      box.replaceChildren(
        ...wanted.map((kind) => this.toggle(photo.filename, kind)),
        ...others.map((ext) => h('span', { class: 'variant other' }, ext)));
    }
    for (const kind of wanted) {
      const input = box.querySelector(`input[data-kind="${kind}"]`);
      if (!input.disabled) input.checked = photo[`keep_${kind}`];
      input.closest('label').classList.toggle('dropped', !photo[`keep_${kind}`]);
    }
  }

  toggle(filename, kind) {
    const name = kind.toUpperCase();
    const input = h('input', { type: 'checkbox', dataset: { kind }, 'aria-label': `Keep ${name} of ${filename}` });
    input.addEventListener('change', async () => {
      const keep = input.checked;
      input.closest('label').classList.toggle('dropped', !keep);
      input.disabled = true;
      try {
        await this.onKeep(filename, kind, keep);
      } catch {
        input.checked = !keep;  // the server refused: show what is true
        input.closest('label').classList.toggle('dropped', keep);
      } finally {
        input.disabled = false;
      }
    });
    return h('label', { class: 'variant', title: `Keep the ${name}` }, input, h('span', {}, name));
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

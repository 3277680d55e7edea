// Toasts: short notices in a corner. At most three at once (the oldest goes); the same notice again
// while it is shown is counted in it ("Upload processing completed · 30 tasks") instead of stacking;
// hovering or focusing one holds it; an Undo button where the action can be undone.
import { h } from './dom.js';
import { ownLabel } from './words.js';

const MOST = 3;
const DURATION = { info: 6000, success: 6000, error: 15000 };

let host = null;  // where toasts show: the page's dock, or a full-screen dialog above it (the top layer hides the page)

function region() {
  let el = document.getElementById('toasts');
  if (!el) el = h('section', { id: 'toasts', class: 'toasts', 'aria-label': 'Notifications' });
  const parent = host ?? document.querySelector('.dock') ?? document.body;
  if (el.parentNode !== parent) parent.append(el);
  return el;
}

/** Show toasts inside this element (an open modal dialog), or on the page again with null. */
export function toastsInto(element) {
  host = element;
  region();
}

const shown = new Map();  // coalescing key → the toast showing it

/**
 * message: what happened; detail: a second line; group: the words a repeat is counted under (default
 * the message); unit: what a repeat counts ("task" → "· 3 tasks"); undo: an async function that takes
 * the action back (a repeat adds its own; Undo runs them newest first).
 */
export function toast(message, { kind = 'info', detail = null, group = null, unit = null, undo = null } = {}) {
  const key = `${kind}\n${group ?? message}`;
  const known = shown.get(key);
  if (known) {
    // The count says how many; the second line says the latest, when the message differs from the group.
    known.repeat(detail ?? (message !== known.group ? message : null), undo, unit);
    region().append(known.el);  // the newest notice is the last one
    return known.el;
  }
  const item = new Toast(key, message, { kind, detail, group, undo });
  shown.set(key, item);
  const list = region();
  list.append(item.el);
  while (list.children.length > MOST) list.firstElementChild.dismiss();
  return item.el;
}

class Toast {
  constructor(key, message, { kind, detail, group, undo }) {
    Object.assign(this, { key, kind, group: group ?? message, n: 1, undos: undo ? [undo] : [] });
    this.title = h('strong', {}, message);
    this.detail = h('p', { hidden: !detail }, detail ?? '');
    this.undoButton = h('button', { type: 'button', class: 'small undo', hidden: !undo, onclick: () => this.undo() }, 'Undo');
    this.el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
      h('div', { class: 'toast-text' }, this.title, this.detail),
      this.undoButton,
      h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', title: 'Dismiss', onclick: () => this.remove() }, '×'));
    this.el.dismiss = () => this.remove();
    // Held while the pointer or the focus is on it: a person reading or reaching for Undo keeps it.
    this.held = new Set();
    for (const [on, off, why] of [['mouseenter', 'mouseleave', 'pointer'], ['focusin', 'focusout', 'focus']]) {
      this.el.addEventListener(on, () => { this.held.add(why); this.pause(); });
      this.el.addEventListener(off, () => { this.held.delete(why); if (!this.held.size) this.resume(); });
    }
    this.left = DURATION[kind];
    this.resume();
  }

  repeat(detail, undo, unit) {
    this.n += 1;
    this.title.textContent = `${this.group} · ${this.n}${unit ? ` ${unit}s` : '×'}`;
    this.detail.textContent = detail ?? '';
    this.detail.hidden = !detail;
    if (undo) this.undos.push(undo);
    this.undoButton.hidden = !this.undos.length;
    this.left = DURATION[this.kind];
    if (!this.held.size) this.resume();
  }

  pause() {
    clearTimeout(this.timer);
    if (this.since) this.left -= performance.now() - this.since;
    this.since = null;
  }

  resume() {
    clearTimeout(this.timer);
    this.since = performance.now();
    this.timer = setTimeout(() => this.remove(), Math.max(this.left, 1000));
  }

  async undo() {
    this.undoButton.disabled = true;
    try {
      for (const undo of [...this.undos].reverse()) await undo();
      this.undos = [];
      if (shown.get(this.key) === this) shown.delete(this.key);  // a new notice starts a toast of its own
      this.title.textContent = 'Undone';
      this.detail.hidden = true;
      this.undoButton.hidden = true;
      this.left = 2000;
      this.resume();
    } catch (error) {
      this.undoButton.disabled = false;
      toast('Could not undo', { kind: 'error', detail: error.message });
    }
  }

  remove() {
    clearTimeout(this.timer);
    if (shown.get(this.key) === this) shown.delete(this.key);
    this.el.remove();
  }
}

const toasted = new Set();
// What a finished task of the project lifecycle (CONTRACT §7.4) says.
const DONE = {
  regenerate: 'Regeneration completed', project_rename: 'Project renamed', project_delete: 'Project deleted',
  project_restore: 'Project restored', photo_move: 'Photos moved',
};

/** The toast a finished user task earns (CONTRACT §5), once per task; repeats are counted in one. */
export function taskToast(task) {
  if (task.source !== 'user' || toasted.has(task.id)) return;
  let shown = true;
  if (task.status === 'failed') toast(`${task.label} failed`, { kind: 'error', detail: task.error, unit: 'task' });
  else if (task.status === 'canceled') toast(`${task.label} canceled`, { unit: 'task' });
  // A restore runs an upload_postprocess under its own label: it is no upload, and its Restore already said so.
  else if (task.status === 'completed' && task.type === 'upload_postprocess' && !ownLabel(task)) {
    toast('Upload processing completed', { kind: 'success', unit: 'task' });
  } else if (task.status === 'completed' && task.type === 'change_commit') toast('Files removed', { kind: 'success', unit: 'task' });
  else if (task.status === 'completed' && task.type in DONE) toast(DONE[task.type], { kind: 'success', unit: 'task' });
  else shown = false;
  if (shown) toasted.add(task.id);
}

// Toasts: short notices in a corner; errors stay longer and are announced at once.
import { h } from './dom.js';

function region() {
  let el = document.getElementById('toasts');
  if (!el) {
    el = h('section', { id: 'toasts', class: 'toasts', 'aria-label': 'Notifications' });
    document.body.append(el);
  }
  return el;
}

export function toast(message, { kind = 'info', detail = null } = {}) {
  const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('div', { class: 'toast-text' }, h('strong', {}, message), detail && h('p', {}, detail)),
    h('button', { class: 'icon', 'aria-label': 'Dismiss', title: 'Dismiss', onclick: () => el.remove() }, '×'));
  region().append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 20000 : 8000);
  return el;
}

const toasted = new Set();

/** The toast a finished user task earns (CONTRACT §5), once per task. */
export function taskToast(task) {
  if (task.source !== 'user' || toasted.has(task.id)) return;
  let shown = true;
  if (task.status === 'failed') toast(`${task.label} failed`, { kind: 'error', detail: task.error });
  else if (task.status === 'canceled') toast(`${task.label} canceled`);
  else if (task.status === 'completed' && task.type === 'upload_postprocess') toast('Upload processing completed', { kind: 'success' });
  else if (task.status === 'completed' && task.type === 'change_commit') toast('Files removed', { kind: 'success' });
  else shown = false;
  if (shown) toasted.add(task.id);
}

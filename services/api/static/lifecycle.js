// The project lifecycle in the browser (CONTRACT §7.4): the questions asked before renaming, deleting,
// regenerating and moving, the requests that start their tasks, and waiting for a task to end.
import { api, get, ownWrites, post, projectPath } from './api.js';
import { count, h, span } from './dom.js';

const ENDED = ['completed', 'failed', 'canceled'];
const POLL_MS = 400;

/**
 * A modal form: resolves to what `read(problem)` returns when its button is used (null from `read`
 * keeps the form open, `problem` saying why), or null when it is dismissed.
 */
function ask({ title, body, action, danger = false, read = () => true, focus = null }) {
  return new Promise((resolve) => {
    const problem = h('p', { class: 'form-error', role: 'alert' });
    const dialog = h('dialog', { class: 'lifecycle-dialog', 'aria-label': title });
    const submit = h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, action);
    const form = h('form', { class: 'stack' }, h('h2', {}, title), ...body, problem,
      h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'), submit));
    dialog.append(form);
    let value = null;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      problem.textContent = '';
      const answer = read(problem);
      if (answer == null) return;
      value = answer;
      dialog.close();
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(value);
    });
    document.body.append(dialog);
    dialog.showModal();
    (focus ?? submit).focus();
  });
}

/** The new name of a project, or null. */
export function askRename(project) {
  const input = h('input', { name: 'name', value: project.name, maxlength: '200', autocomplete: 'off' });
  const asked = ask({
    title: 'Rename project', action: 'Rename', focus: input,
    body: [h('label', { class: 'field' }, h('span', {}, 'Name'), input),
      h('p', { class: 'muted' }, 'The project’s folder takes the new name too; the photos stay as they are.')],
    read: (problem) => {
      const name = input.value.trim();
      if (!name) problem.textContent = 'A project needs a name.';
      return name || null;
    },
  });
  input.select();
  return asked;
}

/** Whether to delete the project. */
export function askDelete(project, ttl) {
  return ask({
    title: `Delete “${project.name}”?`, action: 'Delete project', danger: true,
    body: [h('p', {}, `The project and its ${count(project.photo_count, 'photo')} go to the trash, files and all.`),
      h('p', { class: 'muted' }, ttl > 0
        ? `You can restore it from the projects page for ${span(ttl)}; then it is gone for good.`
        : 'It is gone for good at the next maintenance.')],
  });
}

/** What to make again, ['derivatives', 'metadata'] or one of them, for `n` photos (or all), or null. */
export function askRegenerate(n, all) {
  const boxes = [['derivatives', 'Thumbnails and previews'], ['metadata', 'Date, camera and size']].map(([value, label]) => (
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'what', value, checked: true }), ` ${label}`)));
  return ask({
    title: 'Regenerate', action: 'Regenerate',
    body: [h('p', {}, `Make these again for ${all ? `all ${count(n, 'photo')} of the project` : count(n, 'selected photo')}, `
      + 'even where they look right:'), h('div', { class: 'choices' }, ...boxes)],
    read: (problem) => {
      const what = boxes.map((label) => label.firstChild).filter((box) => box.checked).map((box) => box.value);
      if (!what.length) problem.textContent = 'Choose at least one.';
      return what.length ? what : null;
    },
  });
}

/** The folder of the project to move `n` photos to, among `projects` (the other ones), or null. */
export function askMove(projects, n) {
  if (!projects.length) {
    return ask({ title: 'Move photos', action: 'Close', body: [h('p', {}, 'There is no other project to move them to.')] })
      .then(() => null);
  }
  const select = h('select', { name: 'project', 'aria-label': 'Project' },
    ...projects.map((p) => h('option', { value: p.folder }, p.name)));
  return ask({
    title: `Move ${count(n, 'photo')}`, action: 'Move', focus: select,
    body: [h('label', { class: 'field' }, h('span', {}, 'To the project'), select),
      h('p', { class: 'muted' }, 'Every file goes along (JPG, RAW, sidecars, thumbnails), with its keep decisions.')],
    read: () => select.value,
  });
}

export const rename = (folder, name) => api('PATCH', projectPath(folder), { name });
export const remove = (folder) => api('DELETE', projectPath(folder));
export const restore = (projectId) => post(`/api/trash/projects/${encodeURIComponent(projectId)}/restore`);
export const regenerate = (folder, items, what) => post(projectPath(folder, '/regenerate'), { items, what });
export const moveInto = (folder, items) => post(projectPath(folder, '/move'), { items });

/** The task once it has ended: asked for until then (a task of another project is not on this page's stream). */
export async function ended(taskId) {
  for (;;) {
    const { task } = await get(`/api/tasks/${encodeURIComponent(taskId)}?${ownWrites()}`);
    if (ENDED.includes(task.status)) return task;
    await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
  }
}

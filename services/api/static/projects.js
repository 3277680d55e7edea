// The projects page: every project with its photo and pending counts; create, rename and delete one;
// the deleted ones with Restore; the folders maintenance could not adopt.
import { get, post } from './api.js';
import { count, h } from './dom.js';
import { askDelete, askRename, remove, rename, restore } from './lifecycle.js';
import { Live, connectionStatus } from './sse.js';
import { taskToast, toast } from './toasts.js';

const list = document.getElementById('projects');
const LIFECYCLE = ['project_rename', 'project_delete', 'project_restore'];
const undoable = new Set();  // projects whose deletion was told, with its Undo
let ttl = 0;  // maintenance.trash_ttl_s

function card(project) {
  const { pending } = project;
  return h('li', { class: 'project', dataset: { folder: project.folder } },
    h('a', { href: `/projects/${encodeURIComponent(project.folder)}` },
      h('h2', {}, project.name),
      h('p', { class: 'counts' },
        h('span', {}, count(project.photo_count, 'photo')),
        h('span', { class: pending.photos ? 'pending has-pending' : 'pending' }, `${pending.photos} pending`),
        pending.photos ? h('span', { class: 'kinds' },
          `${pending.jpg} JPG · ${pending.raw} RAW${pending.other ? ` · ${pending.other} other` : ''}`) : null),
      project.folder !== project.name ? h('p', { class: 'folder' }, project.folder) : null),
    h('div', { class: 'project-actions' },
      h('button', { type: 'button', class: 'small quiet', 'aria-label': `Rename ${project.name}`, onclick: () => renameOne(project) }, 'Rename'),
      h('button', { type: 'button', class: 'small quiet danger-text', 'aria-label': `Delete ${project.name}`, onclick: () => deleteOne(project) }, 'Delete')));
}

function until(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
}

function deletedItem(project) {
  return h('li', { dataset: { projectId: project.project_id } },
    h('div', { class: 'what' }, h('strong', {}, project.name),
      h('span', {}, `${count(project.photo_count, 'photo')} · restorable until ${until(project.expires_at)}`)),
    h('button', { type: 'button', 'aria-label': `Restore ${project.name}`, onclick: () => restoreOne(project) }, 'Restore'));
}

function unadoptedItem(folder) {
  return h('li', {}, h('div', { class: 'what' }, h('strong', {}, folder.folder), h('span', {}, folder.reason)));
}

function section(id, items) {
  const el = document.getElementById(id);
  el.querySelector('ul').replaceChildren(...items);
  el.hidden = items.length === 0;
}

async function load() {
  const [{ projects }, { projects: deleted }, { folders }] = await Promise.all([
    get('/api/projects'), get('/api/trash/projects'), get('/api/unadopted-folders')]);
  projects.sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1));
  list.replaceChildren(...projects.map(card));
  document.getElementById('empty').hidden = projects.length > 0;
  section('deleted', deleted.map(deletedItem));
  section('unadopted', folders.map(unadoptedItem));
}

let timer = null;
function loadSoon() {
  clearTimeout(timer);
  timer = setTimeout(() => load().catch(() => {}), 300);
}

async function renameOne(project) {
  const name = await askRename(project);
  if (!name || name === project.name) return;
  try {
    await rename(project.folder, name);
  } catch (error) {
    toast('Rename failed', { kind: 'error', detail: error.message });
  }
}

async function deleteOne(project) {
  if (!await askDelete(project, ttl)) return;
  try {
    await remove(project.folder);  // its toast comes when it is done, with Undo
  } catch (error) {
    toast('Delete failed', { kind: 'error', detail: error.message });
  }
}

/** A project went to the trash, from here or from its own page: Undo restores it. */
function deleted(project) {
  if (undoable.has(project.project_id)) return;
  undoable.add(project.project_id);
  toast(`Deleted “${project.name}”`, {
    kind: 'success',
    detail: 'It can be restored from Deleted projects.',
    undo: async () => { await restore(project.project_id); },
  });
}

async function restoreOne(project) {
  try {
    await restore(project.project_id);
    toast(`Restoring “${project.name}”…`);
  } catch (error) {
    toast('Restore failed', { kind: 'error', detail: error.message });
  }
}

document.getElementById('create').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector('button');
  button.disabled = true;
  try {
    const { project } = await post('/api/projects', { name: form.elements.name.value });
    location.assign(`/projects/${encodeURIComponent(project.folder)}`);
  } catch (error) {
    toast('Could not create the project', { kind: 'error', detail: error.message });
    button.disabled = false;
  }
});

try {
  ({ trash_ttl_s: ttl } = await get('/api/ui-config'));
  await load();
  const left = sessionStorage.getItem('darkroom.deleted');  // deleted on its own page, which sent us here
  if (left) {
    sessionStorage.removeItem('darkroom.deleted');
    deleted(JSON.parse(left));
  }
  // Counts change with photos: follow them, refetching the list (it is small) a moment after.
  new Live({
    onStatus: connectionStatus(document.getElementById('connection')),
    onReset: loadSoon,
    onMessage: (event, data) => {
      if (event === 'task_update' && LIFECYCLE.includes(data.type) && data.finished_at) {
        if (data.type === 'project_delete' && data.status === 'completed' && data.source === 'user') {
          deleted({ project_id: data.project_id, name: data.folder });
        } else {
          taskToast(data);
        }
      }
      if (event !== 'job_update') loadSoon();
    },
  }).start();
  document.addEventListener('visibilitychange', () => { if (!document.hidden) loadSoon(); });
  document.body.classList.add('ready');
} catch (error) {
  toast('Could not load the projects', { kind: 'error', detail: error.message });
}

// The projects page: every project with its photo and pending counts; create one.
import { get, post } from './api.js';
import { count, h } from './dom.js';
import { Live, connectionStatus } from './sse.js';
import { toast } from './toasts.js';

const list = document.getElementById('projects');

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
      project.folder !== project.name ? h('p', { class: 'folder' }, project.folder) : null));
}

async function load() {
  const { projects } = await get('/api/projects');
  projects.sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1));
  list.replaceChildren(...projects.map(card));
  document.getElementById('empty').hidden = projects.length > 0;
}

let timer = null;
function loadSoon() {
  clearTimeout(timer);
  timer = setTimeout(() => load().catch(() => {}), 300);
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
  await load();
  // Counts change with photos: follow them, refetching the list (it is small) a moment after.
  new Live({
    onStatus: connectionStatus(document.getElementById('connection')),
    onReset: loadSoon,
    onMessage: (event) => {
      if (event === 'item' || event === 'item_removed' || event === 'pending_changes') loadSoon();
    },
  }).start();
  document.addEventListener('visibilitychange', () => { if (!document.hidden) loadSoon(); });
  document.body.classList.add('ready');
} catch (error) {
  toast('Could not load the projects', { kind: 'error', detail: error.message });
}

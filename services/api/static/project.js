// The project page: the grid, uploads, the pending bar with Commit and Revert, the Processes panel,
// all kept current by one live connection.
import { ApiError, allPhotos, get, post, projectPath, put } from './api.js';
import { count, h } from './dom.js';
import { Grid } from './grid.js';
import { Processes } from './processes.js';
import { Live, connectionStatus } from './sse.js';
import { toast } from './toasts.js';
import { ACCEPT, Uploader, dropZone } from './upload.js';

const folder = decodeURIComponent(location.pathname.replace(/^\/projects\//, '').replace(/\/$/, ''));
const $ = (selector) => document.querySelector(selector);

let pending = { photos: 0, jpg: 0, raw: 0 };

function showPending(value) {
  pending = value;
  $('#pending-count').textContent = `${value.photos} pending`;
  $('#pending-jpg').textContent = `${value.jpg} JPG`;
  $('#pending-raw').textContent = `${value.raw} RAW`;
  $('.pending-bar').classList.toggle('has-pending', value.photos > 0);
  $('#commit').disabled = value.photos === 0;
  $('#revert').disabled = value.photos === 0;
}

function showCount() {
  $('#photo-count').textContent = count(grid.size, 'photo');
  $('#empty').hidden = grid.size > 0;
}

const grid = new Grid($('#photos'), {
  folder,
  onChange: showCount,
  onKeep: async (filename, kind, keep) => {
    try {
      await put(projectPath(folder, '/keep'), { updates: [{ filename, [`keep_${kind}`]: keep }] });
    } catch (error) {
      toast(`Could not change ${filename}`, { kind: 'error', detail: error.message });
      throw error;
    }
  },
});

let buffered = null;  // live messages that arrive during a refetch, applied on top of it

function dispatch(event, data) {
  if (buffered) buffered.push([event, data]);
  else if (event === 'item') grid.upsert(data.photo);
  else if (event === 'item_removed') grid.remove(data.filename);
  else if (event === 'pending_changes') showPending(data.pending);
  else if (event === 'task_update') processes.onTask(data);
  else if (event === 'job_update') processes.onJob(data);
}

async function refetch() {
  const during = [];
  buffered = during;
  try {
    const [{ project, counts }, photos] = await Promise.all([get(projectPath(folder)), allPhotos(folder),
      processes.load()]);
    document.title = `${project.name} · Darkroom`;
    $('#project-name').textContent = project.name;
    grid.setAll(photos);
    showPending({ photos: counts.pending_photos, jpg: counts.pending_jpg, raw: counts.pending_raw });
  } finally {
    buffered = null;
    for (const [event, data] of during) dispatch(event, data);
  }
}

function confirmCommit() {
  const dialog = $('#commit-dialog');
  const ttl = Number(dialog.dataset.ttl);
  const hours = Math.round(ttl / 3600);
  dialog.querySelector('.what').textContent = `${count(pending.jpg, 'JPG file')} and ${count(pending.raw, 'RAW file')} `
    + `of ${count(pending.photos, 'photo')} will be moved to the project's trash.`;
  dialog.querySelector('.recoverable').textContent = ttl > 0
    ? `They can be restored from the trash for ${hours >= 1 ? count(hours, 'hour') : count(Math.round(ttl / 60), 'minute')}.`
    : '';
  dialog.returnValue = '';
  dialog.showModal();
}

async function commit() {
  try {
    const result = await post(projectPath(folder, '/commit-changes'));
    if (!result.task_id) toast('Nothing to commit');
  } catch (error) {
    toast('Commit failed', { kind: 'error', detail: error.message });
  }
}

async function revert() {
  try {
    await post(projectPath(folder, '/revert-changes'));
  } catch (error) {
    toast('Revert failed', { kind: 'error', detail: error.message });
  }
}

let processes;
let live;

async function main() {
  let config;
  try {
    config = await get('/api/ui-config');
    await get(projectPath(folder));
  } catch (error) {
    const message = error instanceof ApiError && error.status === 404 ? `There is no project “${folder}”.` : error.message;
    $('main').replaceChildren(h('p', { class: 'notice error' }, message, ' ', h('a', { href: '/' }, 'All projects')));
    return;
  }
  $('#commit-dialog').dataset.ttl = config.trash_ttl_s;
  processes = new Processes({
    folder, panel: $('#processes'), button: $('#processes-button'),
    showMaintenance: config.include_maintenance_jobs,
    onShowMaintenance: (value) => live.restart(value),
  });
  live = new Live({
    folder, showMaintenance: config.include_maintenance_jobs,
    onStatus: connectionStatus($('#connection')),
    onReset: () => refetch().catch((error) => toast('Could not reload', { kind: 'error', detail: error.message })),
    onMessage: dispatch,
  });
  live.start();  // first, so nothing that happens while we fetch is missed
  await live.opened;
  await refetch();

  const uploader = new Uploader($('#uploads'), { folder, maxUploadMb: config.max_upload_mb });
  const input = $('#file-input');
  input.accept = ACCEPT;
  $('#upload').addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    if (input.files.length) uploader.add(input.files);
    input.value = '';
  });
  dropZone(document.body, (files) => uploader.add(files));
  $('#commit').addEventListener('click', confirmCommit);
  $('#commit-dialog').addEventListener('close', () => {
    if ($('#commit-dialog').returnValue === 'commit') commit();
  });
  $('#revert').addEventListener('click', revert);
  document.body.classList.add('ready');
}

main();

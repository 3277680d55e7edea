// The project page: the grid with its filters, the loupe, uploads, the pending bar with Commit and
// Revert, the Processes and Trash drawers, all kept current by one live connection.
import { ApiError, allPhotos, get, post, projectPath, put } from './api.js';
import { askDelete, askMove, askRegenerate, askRename, ended, moveInto, regenerate, remove, rename } from './lifecycle.js';
import { count, h, typing } from './dom.js';
import { Culler } from './cull.js';
import { ALL, Grid } from './grid.js';
import { Loupe, actionOf } from './loupe.js';
import { day, flagsFor, state, toggled, variants } from './photo.js';
import { Processes } from './processes.js';
import { Live, connectionStatus } from './sse.js';
import { taskToast, toast } from './toasts.js';
import { Trash } from './trash.js';
import { ACCEPT, Uploader, dropZone } from './upload.js';
import { setDefinitions } from './words.js';

// The project's folder: it changes when the project is renamed, and the page follows it (`follow`).
let folder = decodeURIComponent(location.pathname.replace(/^\/projects\//, '').replace(/\/$/, ''));
let project = null;  // as GET /api/projects/{folder} last said
const $ = (selector) => document.querySelector(selector);
const REVERT_ASKS_OVER = 3;  // photos: reverting more asks first

let pending = { photos: 0, jpg: 0, raw: 0, other: 0 };

function showPending(value) {
  pending = value;
  $('#pending-count').textContent = `${value.photos} pending`;
  $('#pending-jpg').textContent = `${value.jpg} JPG`;
  $('#pending-raw').textContent = `${value.raw} RAW`;
  $('#pending-other').textContent = `${value.other ?? 0} other`;  // HEIC, TIFF, PNG (CONTRACT §7.3)
  $('#pending-other').hidden = !value.other;
  $('.pending-bar').classList.toggle('has-pending', value.photos > 0);
  $('#commit').disabled = value.photos === 0;
  $('#revert').disabled = value.photos === 0;
}

/** Whether a decision moves on to the next photo; remembered in this browser. */
const settings = {
  advance: localStorage.getItem('darkroom.advance') !== 'false',
  setAdvance(value) {
    this.advance = value;
    localStorage.setItem('darkroom.advance', String(value));
  },
};

const grid = new Grid($('#photos'), {
  folder,
  onChange: () => counts(),
  onToggle: (filename, kind) => culler.set(filename, toggled(grid.photos.get(filename), kind)),
  onOpen: (filename) => loupe.open(filename),
  onKey: (filename, event) => gridKey(filename, event),
  onPhoto: (filename, before) => loupe.update(filename, before),
  onSelect: () => showSelection(),
});
const culler = new Culler({ folder, grid });
const loupe = new Loupe($('#loupe'), {
  grid, folder, settings, help,
  act: (filename, action) => culler.set(filename, flagsFor(grid.photos.get(filename), action)),
  toggle: (filename, kind) => culler.set(filename, toggled(grid.photos.get(filename), kind)),
  undo: () => culler.undoLast(),
});

/** Culling keys on the card with the focus: the same as in the loupe, moving on after a decision. */
function gridKey(filename, event) {
  const action = actionOf(event);
  const photo = grid.photos.get(filename);
  if (action) {
    const flags = flagsFor(photo, action);
    if (!flags) return true;
    culler.set(filename, flags).catch(() => {});
    if (settings.advance) grid.move(1, filename);
  } else if (event.key === 'u' && !event.ctrlKey) {
    culler.undoLast().then((undone) => undone && grid.activate(undone, true)).catch(() => {});
  } else if (event.key === 'o' && variants(photo).some((v) => v.kind === 'other' && v.cullable)) {
    culler.set(filename, toggled(photo, 'other')).catch(() => {});
  } else if (event.key === ' ') {
    loupe.open(filename);
  } else if (event.key === 's' && !event.ctrlKey) {
    grid.select(filename);
  } else {
    return false;
  }
  return true;
}

function help() {
  const dialog = $('#help');
  if (!dialog.open) dialog.showModal();
}

// ---- filters and sorting ----

const view = $('#view');

function readView() {
  return Object.fromEntries(Object.keys(ALL).map((key) => [key, view.elements[key].value]));
}

function counts() {
  const shown = grid.visible().length;
  const filtered = Object.entries(readView()).some(([key, value]) => key !== 'sort' && value !== ALL[key]);
  $('#photo-count').textContent = filtered ? `${shown} of ${count(grid.size, 'photo')}` : count(grid.size, 'photo');
  $('#empty').hidden = grid.size > 0;
  $('#none-shown').hidden = !(grid.size > 0 && shown === 0);
  view.querySelector('button[type="reset"]').hidden = !filtered;
  days();
}

/** The date filter offers the days the photos were taken on. */
function days() {
  const select = view.elements.day;
  const tally = new Map();
  for (const photo of grid.photos.values()) tally.set(day(photo), (tally.get(day(photo)) ?? 0) + 1);
  const wanted = [...tally.keys()].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : a < b ? -1 : 1));
  const have = [...select.options].slice(1).map((option) => option.value);
  if (wanted.join('|') === have.join('|')) return;
  const chosen = select.value;
  select.replaceChildren(h('option', { value: 'all' }, 'Any date'),
    ...wanted.map((d) => h('option', { value: d }, d || 'No date')));
  select.value = wanted.includes(chosen) ? chosen : 'all';
  if (select.value !== chosen) grid.setView(readView());
}

view.addEventListener('change', () => grid.setView(readView()));
view.addEventListener('reset', () => setTimeout(() => grid.setView(readView())));
$('#clear-filters').addEventListener('click', () => {
  view.reset();
  grid.setView(readView());
});
$('#filters-button').addEventListener('click', () => {
  const open = !document.body.classList.contains('filters-open');
  document.body.classList.toggle('filters-open', open);
  $('#filters-button').setAttribute('aria-expanded', String(open));
});

/** After an upload: the newest photos first, at the top. */
function showNewest() {
  view.elements.sort.value = 'recent';
  for (const key of ['status', 'type', 'orientation', 'day']) view.elements[key].value = 'all';
  grid.setView(readView());
  window.scrollTo({ top: 0 });
  grid.activate(grid.visible()[0], true);
}

// ---- live updates ----

let buffered = null;  // live messages that arrive during a refetch, applied on top of it

function dispatch(event, data) {
  if (buffered) buffered.push([event, data]);
  else if (event === 'item') grid.upsert(data.photo);
  else if (event === 'item_removed') grid.remove(data.filename);
  else if (event === 'pending_changes') showPending(data.pending);
  else if (event === 'project_renamed' || event === 'project_restored') follow(data);
  else if (event === 'project_deleted') gone();
  else if (event === 'task_update') {
    // First: a task of an upload whose answer was lost is recognised as it starts.
    uploader.owner(data, data.status === 'queued' || data.status === 'running');
    processes.onTask(data);
  } else if (event === 'job_update') {
    uploader.job(data);
    processes.onJob(data);
  }
}

async function refetch() {
  const during = [];
  buffered = during;
  try {
    const [{ project: fetched, counts: c }, photos] = await Promise.all([get(projectPath(folder)), allPhotos(folder),
      processes.load()]);
    project = fetched;
    document.title = `${project.name} · Darkroom`;
    $('#project-name').textContent = project.name;
    grid.setAll(photos);
    showPending({ photos: c.pending_photos, jpg: c.pending_jpg, raw: c.pending_raw, other: c.pending_other ?? 0 });
    // Tasks that finished while we were away: a selection of this page may be waiting for them.
    for (const task of processes.tasks.values()) if (task.finished_at) uploader.finished(task);
  } finally {
    buffered = null;
    for (const [event, data] of during) dispatch(event, data);
  }
}

/** A task finished while we watched: its selection's toast, or its own (CONTRACT §5). */
async function finished(task) {
  await uploader.settled();  // until every upload request is answered we cannot tell whose it is
  if (!uploader.finished(task)) taskToast(task);
  trash.load();  // commits, restores, replacements and maintenance change the trash
}

// ---- commit and revert ----

function confirmCommit() {
  const dialog = $('#commit-dialog');
  const ttl = Number(dialog.dataset.ttl);
  const hours = Math.round(ttl / 3600);
  const files = [count(pending.jpg, 'JPG file'), count(pending.raw, 'RAW file')];
  if (pending.other) files.push(count(pending.other, 'other file'));
  dialog.querySelector('.what').textContent = `${files.slice(0, -1).join(', ')} and ${files.at(-1)} `
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

function askRevert() {
  if (pending.photos <= REVERT_ASKS_OVER) {
    revert();
    return;
  }
  const dialog = $('#revert-dialog');
  dialog.querySelector('.what').textContent = `${count(pending.photos, 'photo')} go back to keeping all their files `
    + `(${pending.jpg} JPG, ${pending.raw} RAW${pending.other ? ` and ${pending.other} other` : ''} marked to drop). `
    + 'You can undo this.';
  dialog.returnValue = '';
  dialog.showModal();
}

/** Revert, with an Undo that sets every flag it changed back as it was. */
async function revert() {
  const before = [...grid.photos.values()].filter((photo) => state(photo) !== 'kept').map((photo) => ({
    filename: photo.filename,
    ...Object.fromEntries(variants(photo).filter((v) => v.cullable && !v.keep).map((v) => [`keep_${v.kind}`, false])),
  }));
  try {
    const { updated } = await post(projectPath(folder, '/revert-changes'));
    toast(`Reverted ${count(updated, 'photo')}`, {
      undo: async () => {
        const present = before.filter((update) => grid.photos.has(update.filename));
        if (present.length) await put(projectPath(folder, '/keep'), { updates: present });
      },
    });
  } catch (error) {
    toast('Revert failed', { kind: 'error', detail: error.message });
  }
}

// ---- the project: regenerate, rename, delete; selected photos: regenerate, move ----

function showSelection() {
  const n = grid.selected.size;
  $('#selection-bar').hidden = n === 0;
  $('#selected-count').textContent = `${n} selected`;
}

async function regenerateSome(items) {
  const what = await askRegenerate(items.length || grid.size, !items.length);
  if (!what) return;
  try {
    await regenerate(folder, items, what);
    toast(`Regenerating ${items.length ? count(items.length, 'photo') : 'every photo'}`, { detail: 'Processes shows how far it is.' });
    if (items.length) grid.clearSelection();
  } catch (error) {
    toast('Regenerate failed', { kind: 'error', detail: error.message });
  }
}

async function moveSelected() {
  const items = [...grid.selected];
  let target;
  try {
    const { projects } = await get('/api/projects');
    target = await askMove(projects.filter((p) => p.project_id !== project.project_id), items.length);
  } catch (error) {
    toast('Could not list the projects', { kind: 'error', detail: error.message });
    return;
  }
  if (!target) return;
  try {
    const { task } = await moveInto(target, items);
    grid.clearSelection();
    toast(`Moving ${count(items.length, 'photo')} to “${target}”…`);
    const done = await ended(task.id);
    if (done.status === 'completed') toast(`Moved ${count(items.length, 'photo')} to “${target}”`, { kind: 'success' });
    else toast(`${done.label} ${done.status}`, { kind: 'error', detail: done.error });
  } catch (error) {
    toast('Move failed', { kind: 'error', detail: error.message });
  }
}

async function renameProject() {
  const name = await askRename(project);
  if (!name || name === project.name) return;
  try {
    await rename(folder, name);  // the page follows the folder when it has moved (`project_renamed`)
  } catch (error) {
    toast('Rename failed', { kind: 'error', detail: error.message });
  }
}

async function deleteProject(ttl) {
  if (!await askDelete({ ...project, photo_count: grid.size }, ttl)) return;
  try {
    await remove(folder);  // the page leaves once the project is in the trash (`project_deleted`)
    toast(`Deleting “${project.name}”…`);
  } catch (error) {
    toast('Delete failed', { kind: 'error', detail: error.message });
  }
}

/** The project moved to another folder (renamed, or restored into a numbered one): everything here follows,
 * and the thumbnails come from there (the old folder's URLs answer 404 now). */
function follow({ folder: moved, name }) {
  project = { ...project, folder: moved, name };
  document.title = `${name} · Darkroom`;
  $('#project-name').textContent = name;
  if (moved === folder) return;
  folder = moved;
  for (const part of [grid, culler, loupe, processes, trash, uploader, live]) part.folder = moved;
  history.replaceState(null, '', `/projects/${encodeURIComponent(moved)}${location.search}`);
  grid.setAll([...grid.photos.values()]);
}

/** The project went to the trash: the projects page, which lists it with Restore. */
function gone() {
  live.close();  // nothing more of it: its routes answer 404 from now on
  sessionStorage.setItem('darkroom.deleted', JSON.stringify({ project_id: project.project_id, name: project.name }));
  location.assign('/');
}

function projectMenu(ttl) {
  const button = $('#project-button');
  const menu = $('#project-menu');
  const show = (open) => {
    menu.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open) menu.querySelector('button').focus();
  };
  button.addEventListener('click', () => show(menu.hidden));
  document.addEventListener('click', (event) => { if (!event.target.closest('.menu-wrap')) show(false); });
  menu.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      show(false);
      button.focus();
    }
  });
  menu.addEventListener('click', (event) => {
    const action = event.target.closest('button')?.dataset.action;
    if (!action) return;
    show(false);
    if (action === 'regenerate') regenerateSome([]);
    else if (action === 'rename') renameProject();
    else if (action === 'delete') deleteProject(ttl);
  });
  $('#regenerate-selected').addEventListener('click', () => regenerateSome([...grid.selected]));
  $('#move-selected').addEventListener('click', moveSelected);
  $('#clear-selection').addEventListener('click', () => grid.clearSelection());
}

// ---- start ----

let processes;
let trash;
let live;
let uploader;

async function main() {
  let config;
  try {
    config = await get('/api/ui-config');
    await get(projectPath(folder));
    setDefinitions((await get('/api/tasks/definitions')).definitions);
  } catch (error) {
    const message = error instanceof ApiError && error.status === 404 ? `There is no project “${folder}”.` : error.message;
    $('main').replaceChildren(h('p', { class: 'notice error' }, message, ' ', h('a', { href: '/' }, 'All projects')));
    return;
  }
  $('#commit-dialog').dataset.ttl = config.trash_ttl_s;
  uploader = new Uploader($('#uploads'), {
    folder, maxUploadMb: config.max_upload_mb, onShow: showNewest, onGroups: () => processes.render(),
  });
  trash = new Trash({
    folder, panel: $('#trash'), button: $('#trash-button'), ttl: config.trash_ttl_s,
  });
  processes = new Processes({
    folder, panel: $('#processes'), button: $('#processes-button'),
    showMaintenance: config.include_maintenance_jobs,
    onShowMaintenance: (value) => live.restart(value),
    groupOf: (id) => uploader.groupOf(id),
    onFinished: finished,
  });
  live = new Live({
    folder, showMaintenance: config.include_maintenance_jobs,
    onStatus: connectionStatus($('#connection')),
    onReset: () => refetch().catch((error) => toast('Could not reload', { kind: 'error', detail: error.message })),
    onMessage: dispatch,
  });
  live.start();  // first, so nothing that happens while we fetch is missed
  await live.opened;
  await Promise.all([refetch(), trash.load()]);

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
  $('#revert').addEventListener('click', askRevert);
  $('#revert-dialog').addEventListener('close', () => {
    if ($('#revert-dialog').returnValue === 'revert') revert();
  });
  $('#help-button').addEventListener('click', help);
  projectMenu(config.trash_ttl_s);
  document.addEventListener('keydown', (event) => {
    if (event.key === '?' && !typing(event) && !document.querySelector('dialog[open]')) {
      event.preventDefault();
      help();
    }
  });
  // Cards scroll into view below the sticky header, never under it; drawers open below the top bar.
  const header = $('.masthead');
  new ResizeObserver(() => {
    document.documentElement.style.setProperty('--masthead', `${header.offsetHeight}px`);
    document.documentElement.style.setProperty('--topbar', `${$('.topbar').offsetHeight}px`);
  }).observe(header);
  document.body.classList.add('ready');
}

main();

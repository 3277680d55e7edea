// The Operations page: the two lanes (Pause, Resume, their depth and job counts), the failed tasks of
// every project (Retry) and the dead letters (Apply, Discard), kept current by the live connection
// without ?project=: lane_update, task_update, job_update, dead_letter and dead_letter_removed.
import { get, post } from './api.js';
import { clock, h } from './dom.js';
import { Live, connectionStatus } from './sse.js';
import { toast } from './toasts.js';
import { setDefinitions, stepWords, taskTitle } from './words.js';

const $ = (selector) => document.querySelector(selector);
const LANE_WORDS = {
  priority: ['Priority lane', 'Uploads and commits a person waits for.'],
  normal: ['Normal lane', 'Maintenance and everything else.'],
};
const STATES = ['queued', 'running', 'retrying', 'failed'];
const SHOWN = 100;
const REFRESH_MS = 500;  // lanes are fetched again at most this often while jobs change

const failed = new Map();   // task id → task
const letters = new Map();  // seq → dead letter
let lanes = [];

// -- lanes -------------------------------------------------------------------------------------------

let refreshing = null;
let again = false;

/** Fetch the lanes again soon: at most once per REFRESH_MS however many updates arrive. */
function refreshLanes() {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = setTimeout(async () => {
    try {
      await loadLanes();
    } catch { /* the connection status says why; the next update tries again */ }
    refreshing = null;
    if (again) {
      again = false;
      refreshLanes();
    }
  }, REFRESH_MS);
}

async function loadLanes() {
  ({ lanes } = await get('/api/lanes'));
  drawLanes();
}

function drawLanes() {
  const host = $('#lanes');
  host.replaceChildren(...lanes.map(laneCard));
}

function laneCard(lane) {
  const [title, what] = LANE_WORDS[lane.lane] ?? [lane.lane, ''];
  const button = h('button', { type: 'button', class: lane.paused ? 'primary' : '' }, lane.paused ? 'Resume' : 'Pause');
  button.addEventListener('click', () => setPaused(lane, !lane.paused, button));
  const types = Object.entries(lane.jobs);
  return h('section', { class: `lane-card${lane.paused ? ' paused' : ''}`, dataset: { lane: lane.lane },
    'aria-label': title },
  h('div', { class: 'lane-head' },
    h('h3', {}, title),
    h('span', { class: `status ${lane.paused ? 'canceled' : 'running'}` }, lane.paused ? 'paused' : 'running'),
    button),
  h('p', { class: 'muted lane-what' }, what,
    lane.updated_at ? ` ${lane.paused ? 'Paused' : 'Resumed'} at ${clock(lane.updated_at)}.` : ''),
  h('dl', { class: 'lane-stats' },
    stat('Waiting', lane.depth, 'depth', 'Jobs not yet handed to a worker'),
    stat('In flight', lane.in_flight, 'in-flight', 'Handed to a worker and not yet done: running, waiting to be retried, or held by a pause'),
    stat('Busy slots', lane.busy_slots, 'busy', 'Worker slots running one of its jobs now, in every worker process')),
  types.length
    ? h('table', { class: 'counts' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Job type'),
        ...STATES.map((state) => h('th', { scope: 'col' }, state)))),
      h('tbody', {}, ...types.map(([type, counts]) => h('tr', { dataset: { type } },
        h('th', { scope: 'row', title: type }, stepWords(type)),
        ...STATES.map((state) => h('td', { class: counts[state] ? `n ${state}` : 'n zero' }, String(counts[state])))))))
    : h('p', { class: 'muted empty-counts' }, 'No job waiting, running or failed.'));
}

function stat(label, value, key, title) {
  return h('div', { dataset: { stat: key }, title }, h('dt', {}, label), h('dd', {}, String(value)));
}

async function setPaused(lane, paused, button) {
  button.disabled = true;
  try {
    const { lane: now } = await post(`/api/lanes/${encodeURIComponent(lane.lane)}/${paused ? 'pause' : 'resume'}`);
    lanes = lanes.map((l) => (l.lane === now.lane ? now : l));
    drawLanes();
  } catch (error) {
    toast(`Could not ${paused ? 'pause' : 'resume'} the ${lane.lane} lane`, { kind: 'error', detail: error.message });
    button.disabled = false;
  }
}

// -- failed tasks --------------------------------------------------------------------------------

async function loadFailed() {
  const { tasks } = await get(`/api/tasks?status=failed&retried=false&show_maintenance=true&limit=${SHOWN}`);
  failed.clear();
  for (const task of tasks) failed.set(task.id, task);
  drawFailed();
}

/** SSE task_update: a task that failed joins the list; one retried (or no longer failed) leaves it. */
function onTask(task) {
  const known = failed.get(task.id);
  if (known && task.updated_at < known.updated_at) return;
  if (task.status === 'failed' && !task.retried_by) failed.set(task.id, task);
  else failed.delete(task.id);
  drawFailed();
}

function drawFailed() {
  const tasks = [...failed.values()].sort((a, b) => ((a.finished_at ?? '') < (b.finished_at ?? '') ? 1 : -1));
  count($('#failed-count'), tasks.length);
  $('#failed').replaceChildren(...(tasks.length ? tasks.map(failedRow) : [h('li', { class: 'empty' }, 'No failed tasks.')]));
}

function failedRow(task) {
  const retry = h('button', { type: 'button', class: 'small', 'aria-label': `Retry ${taskTitle(task)}` }, 'Retry');
  retry.addEventListener('click', () => retryTask(task, retry));
  const step = task.steps[task.step_index];
  return h('li', { class: 'ops-item failed-task', dataset: { taskId: task.id, type: task.type } },
    h('div', { class: 'ops-head' },
      h('h3', {}, taskTitle(task)),
      task.folder ? h('a', { href: `/projects/${encodeURIComponent(task.folder)}`, class: 'project-link' }, task.folder) : null,
      retry),
    h('p', { class: 'task-meta' },
      task.maintenance ? h('span', { class: 'tag' }, 'maintenance') : null,
      step ? h('span', { title: step.type }, `failed at ${stepWords(step.type)} (step ${task.step_index + 1} of ${task.steps.length})`) : null,
      task.finished_at ? h('span', {}, `at ${clock(task.finished_at)}`) : null,
      task.retry_of ? h('span', {}, 'a retry') : null),
    task.error ? h('p', { class: 'error' }, task.error) : null);
}

async function retryTask(task, button) {
  button.disabled = true;
  try {
    const { task: retry } = await post(`/api/tasks/${encodeURIComponent(task.id)}/retry`);
    failed.delete(task.id);
    drawFailed();
    toast(`Retrying ${taskTitle(task)}`, {
      kind: 'success', detail: `from ${stepWords(retry.steps[retry.start_step].type)}` });
  } catch (error) {
    toast(`Could not retry ${taskTitle(task)}`, { kind: 'error', detail: error.message });
    button.disabled = false;
  }
}

// -- dead letters -------------------------------------------------------------------------------------

async function loadLetters() {
  const { dead_letters: found } = await get('/api/dead-letters');
  letters.clear();
  for (const letter of found) letters.set(letter.seq, letter);
  drawLetters();
}

function drawLetters() {
  const shown = [...letters.values()].sort((a, b) => b.seq - a.seq);
  count($('#letters-count'), shown.length);
  $('#letters').replaceChildren(...(shown.length ? shown.map(letterRow) : [h('li', { class: 'empty' }, 'No dead letters.')]));
}

function letterRow(letter) {
  const apply = h('button', { type: 'button', class: 'small', disabled: letter.readable === false,
    title: letter.readable === false ? 'This version cannot read it either' : 'Apply it to the read models now' }, 'Apply');
  apply.addEventListener('click', () => handle(letter, 'apply', apply));
  const discard = h('button', { type: 'button', class: 'small danger' }, 'Discard');
  discard.addEventListener('click', () => askDiscard(letter));
  return h('li', { class: 'ops-item dead-letter', dataset: { seq: String(letter.seq) } },
    h('div', { class: 'ops-head' },
      h('h3', {}, `Sequence ${letter.seq}`),
      h('span', { class: `status ${letter.readable ? 'completed' : 'failed'}` }, letter.readable ? 'readable now' : 'unreadable'),
      apply, discard),
    h('p', { class: 'task-meta' }, h('code', { class: 'subject' }, letter.subject), h('span', {}, `at ${clock(letter.at)}`)),
    h('p', { class: 'error' }, letter.reason));
}

let discarding = null;

function askDiscard(letter) {
  discarding = letter;
  const dialog = $('#discard-dialog');
  dialog.querySelector('.what').textContent = `The message at sequence ${letter.seq} (${letter.subject}) stays in the log, `
    + 'but it is no longer listed here and never applied.';
  dialog.showModal();
}

async function handle(letter, action, button) {
  if (button) button.disabled = true;
  try {
    await post(`/api/dead-letters/${letter.seq}/${action}`);
    letters.delete(letter.seq);
    drawLetters();
    toast(`Dead letter ${letter.seq} ${action === 'apply' ? 'applied' : 'discarded'}`, { kind: 'success' });
  } catch (error) {
    toast(`Could not ${action} dead letter ${letter.seq}`, { kind: 'error', detail: error.message });
    if (button) button.disabled = false;
  }
}

// -- the page -----------------------------------------------------------------------------------

function count(badge, n) {
  badge.textContent = String(n);
  badge.hidden = !n;
}

function dispatch(event, data) {
  if (event === 'lane_update') {
    lanes = lanes.map((lane) => (lane.lane === data.lane ? { ...lane, paused: data.paused, updated_at: data.updated_at } : lane));
    drawLanes();
    refreshLanes();
  } else if (event === 'task_update') {
    onTask(data);
    refreshLanes();
  } else if (event === 'job_update') {
    refreshLanes();
  } else if (event === 'dead_letter') {
    letters.set(data.seq, { ...data, readable: letters.get(data.seq)?.readable ?? false });
    drawLetters();
  } else if (event === 'dead_letter_removed') {
    letters.delete(data.seq);
    drawLetters();
  }
}

async function loadAll() {
  await Promise.all([loadLanes(), loadFailed(), loadLetters()]);
}

async function main() {
  try {
    const { definitions } = await get('/api/tasks/definitions');
    setDefinitions(definitions);
    const live = new Live({
      showMaintenance: true,
      onStatus: connectionStatus($('#connection')),
      onReset: () => loadAll().catch((error) => toast('Could not reload', { kind: 'error', detail: error.message })),
      onMessage: dispatch,
    });
    live.start();  // first, so nothing that happens while we fetch is missed
    await live.opened;
    await loadAll();
  } catch (error) {
    toast('Could not load the operations', { kind: 'error', detail: error.message });
    return;
  }
  $('#discard-dialog').addEventListener('close', () => {
    if ($('#discard-dialog').returnValue === 'discard' && discarding) handle(discarding, 'discard', null);
    discarding = null;
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) loadAll().catch(() => {}); });
  document.body.classList.add('ready');
}

main();

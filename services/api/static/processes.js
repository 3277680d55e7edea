// The Processes panel: this project's tasks, running and newest first, in plain words ("Upload ·
// 20 photos", "Thumbnails 18/20", "Checking the folder"); the tasks of one upload selection are one
// card. Fed by GET (tasks, then each task's jobs) and kept live by SSE task_update and job_update.
import { get, post, projectPath } from './api.js';
import { clock, coalesce, count, h } from './dom.js';
import { Drawer } from './drawer.js';
import { toast } from './toasts.js';
import { statusWords, stepWords, taskTitle } from './words.js';

const ACTIVE = ['queued', 'running'];
const FINISHED = ['completed', 'failed', 'canceled'];
const SHOWN = 50;

export class Processes {
  /** groupOf(task id) → {id, title} of the upload selection it was part of, or null;
   * onFinished(task): a task finished while we watched. */
  constructor({ folder, panel, button, showMaintenance, onShowMaintenance, groupOf, onFinished }) {
    Object.assign(this, { folder, panel, button, showMaintenance, onShowMaintenance, groupOf, onFinished });
    this.tasks = new Map();  // id → task
    this.jobs = new Map();   // task id → Map(job id → job)
    this.cards = new Map();  // task id or group id → its card in the panel
    this.during = null;      // while loading: the live updates that arrive meanwhile
    this.list = panel.querySelector('.tasks');
    this.badge = button.querySelector('.badge');
    this.render = coalesce(() => this.draw());
    const checkbox = panel.querySelector('input[name="show_maintenance"]');
    checkbox.checked = showMaintenance;
    checkbox.addEventListener('change', () => this.setShowMaintenance(checkbox.checked));
    new Drawer(panel, button, () => this.render());
  }

  async setShowMaintenance(value) {
    this.showMaintenance = value;
    this.onShowMaintenance(value);  // the live connection follows with the same filter
    await this.load();
  }

  /** Refetch: the tasks, then each one's jobs. Nothing here toasts: it is what already happened. */
  async load() {
    const during = [];  // updates that arrive while we fetch are applied on top of what we fetched
    this.during = during;
    let tasks;
    let details;
    try {
      ({ tasks } = await get(projectPath(this.folder, `/tasks?show_maintenance=${this.showMaintenance}&limit=${SHOWN}`)));
      details = await Promise.all(tasks.map((task) => get(`/api/tasks/${encodeURIComponent(task.id)}`).catch(() => null)));
    } finally {
      this.during = null;
    }
    this.tasks.clear();
    this.jobs.clear();
    for (const task of tasks) this.tasks.set(task.id, task);
    for (const detail of details) {
      if (!detail) continue;
      this.tasks.set(detail.task.id, detail.task);
      this.jobs.set(detail.task.id, new Map(detail.jobs.map((job) => [job.id, job])));
    }
    for (const [kind, value] of during) (kind === 'task' ? this.onTask(value, false) : this.onJob(value));
    this.render();
  }

  /** SSE task_update. */
  onTask(task, live = true) {
    this.during?.push(['task', task]);
    const known = this.tasks.get(task.id);
    if (known && task.updated_at < known.updated_at) return;
    this.tasks.set(task.id, task);
    if (live && FINISHED.includes(task.status) && !FINISHED.includes(known?.status)) this.onFinished(task);
    this.render();
  }

  /** SSE job_update. */
  onJob(job) {
    this.during?.push(['job', job]);
    if (!this.jobs.has(job.task_id)) this.jobs.set(job.task_id, new Map());
    const jobs = this.jobs.get(job.task_id);
    const known = jobs.get(job.id);
    if (known && job.updated_at < known.updated_at) return;
    jobs.set(job.id, job);
    this.render();
  }

  async cancel(tasks, button) {
    button.disabled = true;
    for (const task of tasks) {
      try {
        const { task: updated } = await post(`/api/tasks/${encodeURIComponent(task.id)}/cancel`);
        this.onTask(updated);
      } catch (error) {
        if (error.status === 409) continue;  // it finished meanwhile
        toast(`Could not cancel ${taskTitle(task)}`, { kind: 'error', detail: error.message });
        button.disabled = false;
        return;
      }
    }
  }

  /** Cards in order: running first, then newest first; a selection's tasks are one card, where its newest is. */
  entries() {
    const rank = (task) => (ACTIVE.includes(task.status) ? 0 : 1);
    const tasks = [...this.tasks.values()].sort((a, b) => rank(a) - rank(b) || (a.created_at < b.created_at ? 1 : -1));
    const entries = [];
    const groups = new Map();
    for (const task of tasks) {
      const group = this.groupOf(task.id);
      if (!group) {
        entries.push({ id: task.id, tasks: [task] });
      } else if (groups.has(group.id)) {
        groups.get(group.id).tasks.push(task);
      } else {
        const entry = { id: `group:${group.id}`, group, tasks: [task] };
        groups.set(group.id, entry);
        entries.push(entry);
      }
    }
    return entries;
  }

  draw() {
    const active = [...this.tasks.values()].filter((task) => ACTIVE.includes(task.status));
    // The badge counts what is going on: a selection's tasks count once.
    const going = new Set(active.map((task) => this.groupOf(task.id)?.id ?? task.id)).size;
    this.badge.textContent = going ? String(going) : '';
    this.badge.hidden = !going;
    if (this.panel.hidden) return;
    const entries = this.entries().slice(0, SHOWN);
    const cards = entries.map((entry) => this.card(entry));
    const kept = new Set(entries.map((entry) => entry.id));
    for (const [id, el] of this.cards) {
      if (!kept.has(id)) {
        el.remove();
        this.cards.delete(id);
      }
    }
    // Move cards only when the order changed: a card under the pointer stays put, so Cancel clicks land.
    const current = [...this.list.children];
    if (cards.length !== current.length || cards.some((el, i) => el !== current[i])) this.list.replaceChildren(...cards);
    if (!entries.length) this.list.replaceChildren(h('li', { class: 'empty' }, 'No tasks yet.'));
  }

  /** A card for one task or one selection's tasks, built once and updated in place. */
  card({ id, group, tasks }) {
    let el = this.cards.get(id);
    if (!el) {
      const cancel = h('button', { type: 'button', class: 'small cancel' }, 'Cancel');
      cancel.addEventListener('click', () => this.cancel(el.tasks.filter((t) => ACTIVE.includes(t.status)), cancel));
      el = h('li', { dataset: group ? { group: group.id, type: tasks[0].type } : { taskId: id, type: tasks[0].type } },
        h('div', { class: 'task-head' }, h('h3', {}), h('span', { class: 'status' }), cancel),
        h('p', { class: 'task-meta' }),
        h('p', { class: 'error' }),
        h('ol', { class: 'jobs' }));
      this.cards.set(id, el);
    }
    el.tasks = tasks;
    const first = tasks[tasks.length - 1];  // the oldest
    const status = overall(tasks);
    const steps = first.steps.map((step, index) => this.step(step, index, tasks));
    const running = ACTIVE.includes(status);
    const photos = steps[0]?.total;
    el.className = `task ${status}${group ? ' group' : ''}`;
    if (group) el.dataset.taskIds = tasks.map((t) => t.id).join(' ');
    el.querySelector('h3').textContent = group ? `${taskTitle(first)} · ${group.title}`
      : `${taskTitle(first)}${photos && first.type !== 'maintenance' ? ` · ${count(photos, 'photo')}` : ''}`;
    const badge = el.querySelector('.task-head .status');
    const canceling = running && tasks.some((t) => t.cancel_requested);
    badge.className = `status ${status}`;
    badge.textContent = canceling ? 'canceling' : statusWords(status);
    el.querySelector('.cancel').hidden = !running || tasks.every((t) => t.cancel_requested || !ACTIVE.includes(t.status));
    const finished = tasks.every((t) => t.finished_at) ? tasks.map((t) => t.finished_at).sort().at(-1) : null;
    el.querySelector('.task-meta').replaceChildren(
      first.maintenance ? h('span', { class: 'tag' }, 'maintenance') : '',
      first.source !== 'user' ? h('span', {}, first.source === 'maintenance' ? 'scheduled' : first.source) : '',
      h('span', {}, `started ${clock(first.created_at)}`),
      finished ? h('span', {}, `finished ${clock(finished)}`) : '',
      tasks.length > 1 ? h('span', {}, `sent in ${tasks.length} parts`) : '');
    const error = el.querySelector(':scope > .error');
    const failed = tasks.find((t) => t.error);
    error.textContent = failed?.error ?? '';
    error.hidden = !failed;
    el.querySelector('.jobs').replaceChildren(...steps.map((row, index) => this.stepRow(row, index)));
    return el;
  }

  /** One step across the card's tasks: its status, progress (the first step's items) and attempts. */
  step(step, index, tasks) {
    const jobs = tasks.map((task) => [...(this.jobs.get(task.id)?.values() ?? [])].find((j) => j.step_index === index));
    let done = 0;
    let total = 0;
    for (const job of jobs) {
      done += job?.progress_done ?? 0;
      total += job?.progress_total ?? 0;
    }
    // A step a task never runs (it ended first, or it is a retry that starts later) is not run.
    const statuses = jobs.map((job, k) => job?.status
      ?? (FINISHED.includes(tasks[k].status) || index < (tasks[k].start_step ?? 0) ? 'skipped' : 'queued'));
    const partly = statuses.includes('completed') && statuses.includes('queued');  // a selection half-way
    const status = partly ? 'running' : ['failed', 'retrying', 'running', 'queued', 'canceled', 'skipped']
      .find((s) => statuses.includes(s)) ?? 'completed';
    return { type: step.type, status, done, total, attempts: Math.max(0, ...jobs.map((job) => job?.attempts ?? 0)),
      error: jobs.find((job) => job?.error)?.error };
  }

  stepRow({ type, status, done, total, attempts, error }, index) {
    const counted = index === 0 && total > 0;  // later steps work on the whole project: a count says nothing
    return h('li', { class: `job ${status}`, dataset: { type }, title: type },
      h('span', { class: 'job-type' }, stepWords(type)),
      h('span', { class: `status ${status}` }, status === 'skipped' ? 'not run' : statusWords(status)),
      h('progress', { max: Math.max(counted ? total : 1, 1), value: counted ? done : (status === 'completed' ? 1 : 0),
        'aria-label': `${stepWords(type)} progress` }),
      h('span', { class: 'count' }, counted ? `${done}/${total}` : ''),
      h('span', { class: 'attempts' }, attempts > 1 ? `attempt ${attempts}` : ''),
      error && h('p', { class: 'error' }, error));
  }
}

/** The status of a card's tasks together: going while any goes, failed if any failed. */
function overall(tasks) {
  const statuses = tasks.map((task) => task.status);
  for (const status of ['running', 'queued', 'failed']) if (statuses.includes(status)) return status;
  return statuses.every((status) => status === 'canceled') ? 'canceled' : 'completed';
}

// The Processes panel: this project's tasks, running and newest first, each with its steps' jobs.
// Fed by GET (tasks, then each task's jobs) and kept live by SSE task_update and job_update.
import { get, post, projectPath } from './api.js';
import { clock, coalesce, h } from './dom.js';
import { taskToast, toast } from './toasts.js';

const ACTIVE = ['queued', 'running'];
const FINISHED = ['completed', 'failed', 'canceled'];
const SHOWN = 50;

export class Processes {
  constructor({ folder, panel, button, showMaintenance, onShowMaintenance }) {
    Object.assign(this, { folder, panel, button, showMaintenance, onShowMaintenance });
    this.tasks = new Map();  // id → task
    this.jobs = new Map();   // task id → Map(job id → job)
    this.cards = new Map();  // task id → its card in the panel
    this.during = null;      // while loading: the live updates that arrive meanwhile
    this.list = panel.querySelector('.tasks');
    this.badge = button.querySelector('.badge');
    this.render = coalesce(() => this.draw());
    const checkbox = panel.querySelector('input[name="show_maintenance"]');
    checkbox.checked = showMaintenance;
    checkbox.addEventListener('change', () => this.setShowMaintenance(checkbox.checked));
    button.addEventListener('click', () => (this.panel.hidden ? this.open() : this.close()));
    panel.querySelector('.close').addEventListener('click', () => this.close());
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !this.panel.hidden && !document.querySelector('dialog[open]')) this.close();
    });
  }

  open() {
    this.panel.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    this.render();
  }

  close() {
    this.panel.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
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
    if (live && FINISHED.includes(task.status) && !FINISHED.includes(known?.status)) taskToast(task);
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

  async cancel(task, button) {
    button.disabled = true;
    try {
      const { task: updated } = await post(`/api/tasks/${encodeURIComponent(task.id)}/cancel`);
      this.onTask(updated);
    } catch (error) {
      toast(`Could not cancel ${task.label}`, { kind: 'error', detail: error.message });
      button.disabled = false;
    }
  }

  sorted() {
    const rank = (task) => (ACTIVE.includes(task.status) ? 0 : 1);
    return [...this.tasks.values()].sort((a, b) => rank(a) - rank(b) || (a.created_at < b.created_at ? 1 : -1));
  }

  draw() {
    const tasks = this.sorted();
    const active = tasks.filter((task) => ACTIVE.includes(task.status)).length;
    this.badge.textContent = active ? String(active) : '';
    this.badge.hidden = !active;
    if (this.panel.hidden) return;
    const shown = tasks.slice(0, SHOWN);
    const cards = shown.map((task) => this.card(task));
    for (const [id, el] of this.cards) {
      if (!this.tasks.has(id)) {
        el.remove();
        this.cards.delete(id);
      }
    }
    // Move cards only when the order changed: a card under the pointer stays put, so Cancel clicks land.
    const current = [...this.list.children];
    if (cards.length !== current.length || cards.some((el, i) => el !== current[i])) this.list.replaceChildren(...cards);
    if (!tasks.length) this.list.replaceChildren(h('li', { class: 'empty' }, 'No tasks yet.'));
  }

  /** A task's card, built once and updated in place. */
  card(task) {
    let el = this.cards.get(task.id);
    if (!el) {
      const cancel = h('button', { type: 'button', class: 'small cancel' }, 'Cancel');
      cancel.addEventListener('click', () => this.cancel(this.tasks.get(task.id), cancel));
      el = h('li', { dataset: { taskId: task.id, type: task.type } },
        h('div', { class: 'task-head' }, h('h3', {}, task.label), h('span', { class: 'status' }),
          h('span', { class: 'step' }), cancel),
        h('p', { class: 'task-meta' }),
        h('p', { class: 'error' }),
        h('ol', { class: 'jobs' }));
      this.cards.set(task.id, el);
    }
    const running = ACTIVE.includes(task.status);
    el.className = `task ${task.status}`;
    const status = el.querySelector('.task-head .status');
    status.className = `status ${task.status}`;
    status.textContent = task.cancel_requested && running ? 'canceling' : task.status;
    el.querySelector('.step').textContent = `step ${Math.min(task.step_index + 1, task.steps.length)} of ${task.steps.length}`;
    el.querySelector('.cancel').hidden = !running || task.cancel_requested;
    el.querySelector('.task-meta').replaceChildren(
      task.maintenance ? h('span', { class: 'tag' }, 'maintenance') : '',
      h('span', {}, `${task.source} · ${clock(task.created_at)}`),
      task.finished_at ? h('span', {}, `finished ${clock(task.finished_at)}`) : '');
    const error = el.querySelector(':scope > .error');
    error.textContent = task.error ?? '';
    error.hidden = !task.error;
    const jobs = [...(this.jobs.get(task.id)?.values() ?? [])].sort((a, b) => a.step_index - b.step_index);
    el.querySelector('.jobs').replaceChildren(...jobs.map((job) => this.jobRow(job)));
    return el;
  }

  jobRow(job) {
    const total = job.progress_total;
    return h('li', { class: `job ${job.status}`, dataset: { jobId: job.id } },
      h('span', { class: 'job-type' }, job.type),
      h('span', { class: `status ${job.status}` }, job.status),
      h('progress', { max: Math.max(total, 1), value: job.status === 'completed' && !total ? 1 : job.progress_done,
        'aria-label': `${job.type} progress` }),
      h('span', { class: 'count' }, total ? `${job.progress_done}/${total}` : ''),
      h('span', { class: 'attempts' }, job.attempts > 1 ? `attempt ${job.attempts}` : job.attempts ? '1 attempt' : ''),
      job.error && h('p', { class: 'error' }, job.error));
  }
}

// The panel of one upload selection: checking, the conflict step, progress with speed and time left,
// waiting out a lost connection, processing, and how it went.
import { bytes, count, h, span } from './dom.js';

export class Canceled extends Error {}

/** The panel of one selection, in the list at the bottom left. */
export class Panel {
  constructor(list, selection) {
    this.selection = selection;
    this.heading = h('strong', {}, `${count(selection.files.length, 'file')}`);
    this.summary = h('span', { class: 'summary' });
    this.bar = h('progress', { max: 1, value: 0, 'aria-label': 'Upload progress', hidden: true });
    this.meta = h('p', { class: 'upload-meta muted' });
    this.body = h('div', { class: 'upload-body' });
    this.problems = h('ul', { class: 'file-errors' });
    this.cancelButton = h('button', { type: 'button', class: 'small' }, 'Cancel');
    this.cancelButton.onclick = () => selection.cancel();
    this.close = h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', title: 'Dismiss', hidden: true,
      onclick: () => this.el.remove() }, '×');
    this.el = h('li', { class: 'upload', dataset: { state: 'checking' } },
      h('div', { class: 'upload-head' }, this.heading, this.summary, this.cancelButton, this.close),
      this.bar, this.meta, this.body, this.problems);
    list.append(this.el);
    this.samples = [];
  }

  set(state, heading, meta = '') {
    this.el.dataset.state = state;
    this.heading.textContent = heading;
    this.meta.textContent = meta;
  }

  checking() {
    this.set('checking', `Checking ${count(this.selection.files.length, 'file')}…`);
  }

  /** The conflict step: resolves to {replace: the files to replace, move: whether to bring the photos
   * that live in other projects here}. */
  ask({ send, different, elsewhere }) {
    this.set('asking', 'Before uploading');
    return new Promise((resolve, reject) => {
      const replace = new Set();
      const go = h('button', { type: 'button', class: 'primary' });
      const move = h('input', { type: 'checkbox', name: 'move', onchange: () => label() });
      const label = () => {
        const n = send + replace.size + (move.checked ? elsewhere.length : 0);
        go.textContent = move.checked ? `Move here and send ${count(n, 'file')}` : `Send ${count(n, 'file')}`;
        go.disabled = !n;
      };
      const boxes = different.map((file) => h('input', {
        type: 'checkbox', 'aria-label': `Replace ${file.name}`,
        onchange: (event) => { if (event.target.checked) replace.add(file); else replace.delete(file); label(); },
      }));
      const all = (on) => boxes.forEach((box, i) => { box.checked = on; if (on) replace.add(different[i]); else replace.delete(different[i]); label(); });
      const sections = [h('p', {}, send ? `${count(send, 'new file')} will be uploaded.` : 'No new files.',
        ...this.skippedWords())];
      if (different.length) {
        sections.push(h('section', { class: 'conflict different' },
          h('h3', {}, `${count(different.length, 'file')} ${different.length === 1 ? 'differs from the one' : 'differ from the ones'} here with the same name`),
          h('ul', { class: 'conflict-files' }, different.map((file, i) => h('li', {}, h('label', {}, boxes[i], ` ${file.name}`),
            h('span', { class: 'muted' }, ` ${bytes(file.size)}`)))),
          h('div', { class: 'conflict-actions' },
            h('button', { type: 'button', class: 'small', onclick: () => all(true) }, 'Replace all'),
            h('button', { type: 'button', class: 'small', onclick: () => all(false) }, 'Skip all')),
          h('p', { class: 'muted' }, 'Ticked files replace the ones here, which go to the trash; the others are skipped.')));
      }
      if (elsewhere.length) {
        const projects = [...new Set(elsewhere.map((e) => e.project))];
        sections.push(h('section', { class: 'conflict elsewhere' },
          h('h3', {}, `${count(elsewhere.length, 'file')} already in ${projects.length === 1 ? `project “${projects[0]}”` : 'other projects'}`),
          h('ul', { class: 'conflict-files' }, elsewhere.map(({ file, project }) => h('li', {}, file.name,
            projects.length > 1 ? h('span', { class: 'muted' }, ` in “${project}”`) : null))),
          h('label', { class: 'check' }, move, ' Move these photos here, with all their files'),
          h('p', { class: 'muted' }, 'A photo lives in one project: moved here, it leaves the other one (its '
            + 'JPG, RAW, sidecars and keep decisions come along). Otherwise these files are skipped.')));
      }
      go.addEventListener('click', () => {
        this.body.replaceChildren();
        resolve({ replace, move: move.checked });
      });
      this.cancelButton.onclick = () => {
        this.selection.cancel();
        reject(new Canceled());
      };
      label();
      this.body.replaceChildren(...sections, h('div', { class: 'actions' }, go));
      go.focus();
    });
  }

  moving(n) {
    this.set('checking', `Moving ${count(n, 'photo')} here…`);
  }

  skippedWords() {
    const here = this.selection.skipped.length;
    const refused = this.selection.refused.length;
    return [here ? ` ${count(here, 'file')} already here ${here === 1 ? 'is' : 'are'} skipped.` : '',
      refused ? ` ${count(refused, 'file')} cannot be uploaded (listed below).` : ''];
  }

  sending(n) {
    this.cancelButton.onclick = () => this.selection.cancel();
    this.set('sending', `Uploading ${count(n, 'file')}`);
    this.bar.hidden = false;
    this.showProblems();
  }

  progress(sent, total) {
    this.bar.value = total ? sent / total : 1;
    const now = performance.now();
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
    const [t0, b0] = this.samples[0];
    const speed = now - t0 > 700 ? ((sent - b0) * 1000) / (now - t0) : null;
    const parts = [`${bytes(sent)} of ${bytes(total)}`];
    if (speed > 0) parts.push(`${bytes(speed)}/s`, `${span((total - sent) / speed)} left`);
    this.summary.textContent = `${Math.floor((100 * sent) / Math.max(total, 1))}%`;
    if (this.el.dataset.state === 'sending') this.meta.textContent = parts.join(' · ');
  }

  waiting(connection, ms) {
    this.el.dataset.state = 'waiting';
    this.meta.textContent = `${connection ? 'Connection lost' : 'The server had a problem'} · trying again in ${span(ms / 1000)}`;
    this.samples = [];
  }

  resumed() {
    this.el.dataset.state = this.bar.hidden ? 'checking' : 'sending';
    this.meta.textContent = 'Trying again…';
  }

  processing() {
    const s = this.selection;
    this.set('processing', `${count(s.landed, 'file')} uploaded`, this.words ? `Processing · ${this.words}` : 'Processing…');
    this.cancelButton.hidden = true;
    this.bar.hidden = true;
    this.summary.textContent = '';
    this.showProblems();
  }

  finished() {
    const s = this.selection;
    const parts = [s.landed ? `${count(s.landed, 'file')} uploaded` : 'Nothing new uploaded'];
    if (s.skipped.length) parts.push(`${s.skipped.length} skipped`);
    if (s.refused.length) parts.push(`${s.refused.length} refused`);
    this.set(s.refused.length ? 'has-errors' : 'done', parts.join(', '));
    this.cancelButton.hidden = true;
    this.close.hidden = false;
    this.bar.hidden = true;
    this.summary.textContent = '';
    this.showProblems();
    if (s.landed) this.body.replaceChildren(h('button', { type: 'button', class: 'small', onclick: () => s.uploader.onShow() }, 'Show them'));
    if (!s.refused.length) this.fade();
  }

  canceled() {
    const s = this.selection;
    this.set('has-errors', `Canceled · ${count(s.landed, 'file')} uploaded`);
    this.body.replaceChildren();
    this.cancelButton.hidden = true;
    this.close.hidden = false;
    this.bar.hidden = true;
    this.showProblems();
  }

  failed(message) {
    this.set('has-errors', 'Upload stopped', message);
    this.cancelButton.hidden = true;
    this.close.hidden = false;
    this.bar.hidden = true;
    this.showProblems();
  }

  showProblems() {
    const { refused, skipped } = this.selection;
    this.problems.replaceChildren(
      ...refused.map(({ name, error }) => h('li', {}, h('span', { class: 'file' }, name), ': ', error)),
      ...skipped.filter((s) => s.reason !== 'already here').map(({ name, reason }) => h('li', { class: 'skipped' }, h('span', { class: 'file' }, name), ': ', reason)));
  }

  /** Gone after a while, unless the pointer is on it. */
  fade() {
    const later = () => { this.timer = setTimeout(() => this.el.remove(), 8000); };
    this.el.addEventListener('mouseenter', () => clearTimeout(this.timer));
    this.el.addEventListener('mouseleave', later);
    later();
  }
}

// Uploads: a selection (button or drop) goes in a few multi-file requests, one after another, each
// with a progress bar and, when it is answered, the files the server skipped or refused.
import { uploadFiles } from './api.js';
import { count, h } from './dom.js';

const BATCH_FILES = 20;
const BATCH_BYTES = 100 * 1024 * 1024;
// CONTRACT §2: what a project takes (JPG, RAW, OTHER).
const ACCEPTED = /\.(jpe?g|raw|cr2|cr3|nef|arw|dng|raf|orf|rw2|png|tiff?|heic|heif|webp)$/i;
export const ACCEPT = '.jpg,.jpeg,.raw,.cr2,.cr3,.nef,.arw,.dng,.raf,.orf,.rw2,.png,.tif,.tiff,.heic,.heif,.webp';

/** Files in batches of at most BATCH_FILES files and BATCH_BYTES bytes (a bigger file goes alone). */
export function batches(files) {
  const out = [];
  let batch = [];
  let bytes = 0;
  for (const file of files) {
    if (batch.length && (batch.length >= BATCH_FILES || bytes + file.size > BATCH_BYTES)) {
      out.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(file);
    bytes += file.size;
  }
  if (batch.length) out.push(batch);
  return out;
}

export class Uploader {
  constructor(list, { folder, maxUploadMb }) {
    Object.assign(this, { list, folder, maxBytes: maxUploadMb * 1024 * 1024 });
    this.queue = Promise.resolve();
    this.active = 0;
    window.addEventListener('beforeunload', (event) => {
      if (this.active) event.preventDefault();  // leaving would cut the upload short
    });
  }

  /** Upload a selection: refuse what cannot be sent, send the rest in batches. */
  add(fileList) {
    const files = [...fileList];
    const refused = [];
    const sendable = files.filter((file) => {
      const problem = !ACCEPTED.test(file.name) ? 'not an accepted photo file (JPG, RAW, PNG, TIFF, HEIC, WebP)'
        : file.size > this.maxBytes ? `file is larger than ${Math.round(this.maxBytes / 1048576)} MB` : null;
      if (problem) refused.push({ name: file.name, error: problem });
      return !problem;
    });
    if (refused.length) this.entry(`${count(refused.length, 'file')} not sent`).finish({ errors: refused });
    for (const batch of batches(sendable)) {
      const entry = this.entry(`Uploading ${count(batch.length, 'file')}`, true);
      this.active += 1;
      this.queue = this.queue.then(() => this.send(batch, entry)).finally(() => { this.active -= 1; });
    }
  }

  async send(files, entry) {
    entry.start();
    try {
      const { status, body } = await uploadFiles(this.folder, files, (done, total) => entry.progress(done, total));
      if (status >= 500 && !body.errors) body.errors = files.map((f) => ({ name: f.name, error: body.error ?? `server error ${status}` }));
      else if (status >= 400 && !body.errors?.length) body.errors = [{ name: count(files.length, 'file'), error: body.error ?? `refused (${status})` }];
      entry.finish(body);
    } catch (error) {
      entry.finish({ errors: files.map((f) => ({ name: f.name, error: error.message })) });
    }
  }

  entry(title, waiting = false) {
    const heading = h('strong', {}, title);
    const bar = h('progress', { max: 1, value: 0, 'aria-label': title });
    const summary = h('span', { class: 'summary' }, waiting ? 'waiting' : '');
    const problems = h('ul', { class: 'file-errors' });
    const dismiss = h('button', { class: 'icon', 'aria-label': 'Dismiss', title: 'Dismiss', onclick: () => el.remove() }, '×');
    const el = h('li', { class: 'upload' }, h('div', { class: 'upload-head' }, heading, summary, dismiss), bar, problems);
    this.list.append(el);
    return {
      start: () => { summary.textContent = '0%'; },
      progress: (done, total) => {
        bar.value = total ? done / total : 0;
        summary.textContent = `${Math.floor((100 * done) / Math.max(total, 1))}%`;
      },
      finish: ({ files = [], skipped = [], errors = [] }) => {
        bar.remove();
        el.classList.add(errors.length ? 'has-errors' : 'done');
        const parts = [];
        if (files.length) parts.push(`${count(files.length, 'file')} uploaded`);
        if (skipped.length) parts.push(`${skipped.length} skipped`);
        if (errors.length) parts.push(`${errors.length} refused`);
        heading.textContent = parts.join(', ') || 'Nothing uploaded';
        summary.textContent = '';
        for (const { name, error, reason } of [...errors, ...skipped]) {
          problems.append(h('li', {}, h('span', { class: 'file' }, name), ': ', error ?? reason));
        }
        if (!errors.length) setTimeout(() => el.remove(), 5000);
      },
    };
  }
}

/** Drop files anywhere on the page to upload them. */
export function dropZone(target, onFiles) {
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes('Files');
  target.addEventListener('dragenter', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    document.body.classList.add('dragging');
  });
  target.addEventListener('dragover', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
  });
  target.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) document.body.classList.remove('dragging');
  });
  target.addEventListener('drop', (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    document.body.classList.remove('dragging');
    if (event.dataTransfer.files.length) onFiles(event.dataTransfer.files);
  });
}

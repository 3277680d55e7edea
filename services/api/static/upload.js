// Uploads: a selection (the Upload button or a drop) is one operation with one panel. First a check
// (POST …/upload/check: new, identical, different, in another project), a question when a file
// would replace one here, then the files in requests of a few dozen, with overall progress, speed and
// time left. A dropped connection is waited out and only what did not land is sent again. One toast
// when the server has processed the whole selection.
import { ApiError, post, projectPath, sendFiles } from './api.js';
import { count } from './dom.js';
import { ended, moveInto } from './lifecycle.js';
import { toast } from './toasts.js';
import { Canceled, Panel } from './uploadpanel.js';
import { ownLabel, stepWords } from './words.js';

const BATCH_FILES = 50;
const BATCH_BYTES = 64 * 1024 * 1024;
const CHECK_FILES = 1000;
const WAITS_MS = [1000, 2000, 4000, 8000, 15000];  // between tries while the server cannot be reached
const SERVER_RETRIES = 3;                           // a 5xx answer is tried again this often
const REMEMBERED = 30;                              // selections whose tasks the Processes panel groups
// CONTRACT §2: what a project takes (JPG, RAW, OTHER), and .xmp sidecars.
const PHOTO_FILES = 'jpe?g|raw|cr2|cr3|nef|arw|dng|raf|orf|rw2|png|tiff?|heic|heif|webp';
const PHOTO = new RegExp(`\\.(${PHOTO_FILES})$`, 'i');
const ACCEPTED = new RegExp(`\\.(${PHOTO_FILES}|xmp)$`, 'i');
/** The photo a file belongs to: its basename, or for a sidecar (`DSC01.ARW.xmp`, `DSC01.xmp`) its photo's. */
export function photoOf(name) {
  const stem = (n) => (n.lastIndexOf('.') > 0 ? n.slice(0, n.lastIndexOf('.')) : n);
  const owner = /\.xmp$/i.test(name) ? stem(name) : name;
  return PHOTO.test(owner) ? stem(owner) : owner;
}
export const ACCEPT = '.jpg,.jpeg,.raw,.cr2,.cr3,.nef,.arw,.dng,.raf,.orf,.rw2,.png,.tif,.tiff,.heic,.heif,.webp,.xmp';

/** Files to send, in requests of at most BATCH_FILES files and BATCH_BYTES bytes (a bigger file goes
 * alone); replacements go in requests of their own (`overwrite` is per request). */
export function batches(items) {
  const out = [];
  for (const overwrite of [false, true]) {
    let batch = null;
    for (const { file } of items.filter((item) => item.overwrite === overwrite)) {
      if (!batch || batch.files.length >= BATCH_FILES || batch.bytes + file.size > BATCH_BYTES) {
        batch = { overwrite, files: [], bytes: 0 };
        out.push(batch);
      }
      batch.files.push(file);
      batch.bytes += file.size;
    }
  }
  return out.filter((batch) => batch.files.length);
}

const sum = (files) => files.reduce((total, file) => total + file.size, 0);

/** The file's SHA-256 in hex, or null where the browser cannot (crypto.subtle needs a secure origin). */
async function sha256(file) {
  if (!globalThis.crypto?.subtle) return null;
  const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    window.addEventListener('online', done);  // the network is back: try now
    signal.addEventListener('abort', done);
  });
}

export class Uploader {
  /** onShow(): put the newest photos in view; the Processes panel asks groupOf(task id). */
  constructor(list, { folder, maxUploadMb, onShow = () => {}, onGroups = () => {} }) {
    Object.assign(this, { list, folder, maxBytes: maxUploadMb * 1024 * 1024, onShow, onGroups });
    this.selections = new Set();  // this page's, until they are done
    this.inflight = 0;            // upload requests not yet answered
    this.waiters = [];
    this.storageKey = `darkroom.uploads.${folder}`;
    window.addEventListener('beforeunload', (event) => {
      if ([...this.selections].some((s) => s.sending)) event.preventDefault();  // leaving would cut it short
    });
  }

  /** Upload a selection: check, ask, send, follow. */
  add(fileList) {
    const selection = new Selection(this, [...fileList]);
    this.selections.add(selection);
    selection.run().finally(() => { if (selection.over) this.selections.delete(selection); });
    return selection;
  }

  /** Resolves once no upload request is waiting for its answer: then every task id of this page is known. */
  settled() {
    return this.inflight ? new Promise((resolve) => this.waiters.push(resolve)) : Promise.resolve();
  }

  request(delta) {
    this.inflight += delta;
    if (!this.inflight) for (const resolve of this.waiters.splice(0)) resolve();
  }

  /** The selection a task belongs to, or null. A request whose answer was lost may have started one
   * task: with `adopt` (a task seen live as it starts), the next unknown upload task is taken to be it. */
  owner(task, adopt = false) {
    for (const selection of this.selections) if (selection.taskIds.has(task.id)) return selection;
    if (!adopt || task.type !== 'upload_postprocess' || task.source !== 'user' || ownLabel(task)) return null;
    const orphaned = [...this.selections].find((s) => s.lost > s.adopted);
    if (!orphaned) return null;
    orphaned.adopted += 1;
    orphaned.addTask(task.id);
    return orphaned;
  }

  /** A task finished: true when it belongs to a selection of this page (which then toasts for all of it). */
  finished(task) {
    const selection = this.owner(task);
    selection?.finished(task);
    return Boolean(selection);
  }

  /** A job moved: the selection it belongs to shows its processing. */
  job(job) {
    for (const selection of this.selections) if (selection.taskIds.has(job.task_id)) selection.job(job);
  }

  /** {id, title} of the selection a task was part of (remembered across reloads), or null. */
  groupOf(taskId) {
    this.groups ??= this.recall();
    return this.groups.find((group) => group.taskIds.includes(taskId)) ?? null;
  }

  recall() {
    try {
      return JSON.parse(localStorage.getItem(this.storageKey) ?? '[]');
    } catch {
      return [];
    }
  }

  remember(selection) {
    this.groups = [{ id: selection.id, title: selection.title, taskIds: [...selection.taskIds] },
      ...(this.groups ?? this.recall()).filter((group) => group.id !== selection.id)].slice(0, REMEMBERED);
    try {
      localStorage.setItem(this.storageKey, JSON.stringify(this.groups));
    } catch { /* storage full or off: this page still groups them */ }
    this.onGroups();
  }
}

class Selection {
  constructor(uploader, files) {
    Object.assign(this, { uploader, files });
    this.id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    this.title = `${count(files.length, 'file')}`;
    this.controller = new AbortController();
    this.panel = new Panel(uploader.list, this);
    this.refused = [];      // {name, error}: never sent, or refused by the server
    this.skipped = [];      // {name, reason}: already here, or left out on purpose
    this.landed = 0;        // files the server now has from this selection
    this.taskIds = new Set();
    this.done = new Map();  // task id → finished task
    this.thumbnails = new Map();  // task id → [done, total] of its first step
    this.lost = 0;          // requests whose answer never came
    this.adopted = 0;
    this.waits = 0;         // tries in a row that found the server away
    this.sending = false;
    this.sentAll = false;
    this.over = false;
  }

  get signal() {
    return this.controller.signal;
  }

  cancel() {
    this.controller.abort();
  }

  async run() {
    try {
      const sendable = this.files.filter((file) => {
        const problem = !ACCEPTED.test(file.name) ? 'not an accepted photo file (JPG, RAW, PNG, TIFF, HEIC, WebP) or sidecar (XMP)'
          : file.size > this.uploader.maxBytes ? `file is larger than ${Math.round(this.uploader.maxBytes / 1048576)} MB`
            : file.size === 0 ? 'file is empty' : null;
        if (problem) this.refused.push({ name: file.name, error: problem });
        return !problem;
      });
      this.panel.checking();
      const verdicts = await this.check(sendable);
      const plan = [];
      const different = [];
      const elsewhere = [];
      for (const file of sendable) {
        const verdict = verdicts.get(file);
        if (verdict.status === 'identical') this.skipped.push({ name: file.name, reason: 'already here' });
        else if (verdict.status === 'refused') this.refused.push({ name: file.name, error: verdict.reason });
        else if (verdict.status === 'elsewhere') elsewhere.push({ file, project: verdict.project });
        else if (verdict.status === 'different') different.push(file);
        else plan.push({ file, overwrite: false });  // new, or `exists` where we cannot hash: the server decides
      }
      if (different.length || elsewhere.length) {
        const { replace, move } = await this.panel.ask({ send: plan.length, different, elsewhere });
        for (const file of different) {
          if (replace.has(file)) plan.push({ file, overwrite: true });
          else this.skipped.push({ name: file.name, reason: 'kept the file already here' });
        }
        const here = move ? await this.moveHere(elsewhere.map(({ file }) => file)) : new Map();
        for (const { file, project } of elsewhere) {
          const verdict = here.get(file)?.status;
          if (verdict === 'identical') this.landed += 1;  // it came along with its photo
          else if (verdict && verdict !== 'elsewhere') plan.push({ file, overwrite: false });
          else this.skipped.push({ name: file.name, reason: `lives in project “${project}”` });
        }
      }
      this.sending = true;
      await this.send(plan);
      this.sending = false;
      this.sentAll = true;
      this.settle();
    } catch (error) {
      this.sending = false;
      this.over = true;
      if (error instanceof Canceled || error.canceled) this.panel.canceled();
      else this.panel.failed(error.message);
    }
  }

  /** Bring the photos of these files here from the projects they live in (a photo_move task), then each
   * file's verdict again: the ones that came along are `identical` now. */
  async moveHere(files) {
    const photos = [...new Set(files.map((file) => photoOf(file.name)))];
    this.panel.moving(photos.length);
    const { task } = await moveInto(this.uploader.folder, photos);
    this.addTask(task.id);
    const done = await ended(task.id);
    if (done.status !== 'completed') this.refused.push({ name: `${count(photos.length, 'photo')}`, error: done.error ?? `move ${done.status}` });
    this.panel.checking();
    return this.check(files);
  }

  /** Each file's verdict (POST …/upload/check); those with a same-sized namesake are hashed and asked again. */
  async check(files) {
    const verdicts = new Map();
    for (let i = 0; i < files.length; i += CHECK_FILES) {
      const chunk = files.slice(i, i + CHECK_FILES);
      const first = await this.verdicts(chunk.map((file) => ({ name: file.name, size: file.size })));
      chunk.forEach((file, k) => verdicts.set(file, first[k]));
      const same = chunk.filter((file) => verdicts.get(file).status === 'exists');
      const hashed = [];
      for (const file of same) {
        const digest = await sha256(file);
        if (digest) hashed.push({ file, digest });
      }
      if (hashed.length) {
        const second = await this.verdicts(hashed.map(({ file, digest }) => ({ name: file.name, size: file.size, sha256: digest })));
        hashed.forEach(({ file }, k) => verdicts.set(file, second[k]));
      }
    }
    return verdicts;
  }

  async verdicts(files) {
    for (;;) {
      try {
        const { files: verdicts } = await post(projectPath(this.uploader.folder, '/upload/check'), { files });
        this.waits = 0;
        return verdicts;
      } catch (error) {
        if (!(error instanceof ApiError) || (error.status !== 0 && error.status < 500)) throw error;
        await this.waitForServer(error.status === 0);
      }
    }
  }

  async waitForServer(connection) {
    if (this.signal.aborted) throw new Canceled();
    const ms = WAITS_MS[Math.min(this.waits, WAITS_MS.length - 1)];
    this.waits += 1;
    this.panel.waiting(connection, ms);
    await sleep(ms, this.signal);
    if (this.signal.aborted) throw new Canceled();
    this.panel.resumed();
  }

  async send(plan) {
    this.total = sum(plan.map((item) => item.file));
    this.sent = 0;
    this.panel.sending(plan.length);
    for (const batch of batches(plan)) {
      let { files } = batch;
      let failures = 0;
      while (files.length) {
        const size = sum(files);
        let answer;
        this.uploader.request(+1);
        try {
          answer = await sendFiles(this.uploader.folder, files, {
            overwrite: batch.overwrite, signal: this.signal,
            onProgress: (loaded, total) => this.panel.progress(this.sent + (size * loaded) / total, this.total),
          });
        } catch (error) {
          if (error.canceled) throw new Canceled();
          this.lost += 1;  // the server may have kept some and started their task: we ask before sending again
          await this.waitForServer(true);
          files = await this.unsent(files);
          continue;
        } finally {
          this.uploader.request(-1);
        }
        const { status, body } = answer;
        if (status >= 500 && status !== 507 && failures < SERVER_RETRIES) {
          failures += 1;
          await this.waitForServer(false);
          files = await this.unsent(files);
          continue;
        }
        this.waits = 0;
        this.record(status, body, files);
        this.sent += size;
        this.panel.progress(this.sent, this.total);
        if (status === 507) throw new Error(body.error ?? 'the disk is full');
        break;
      }
    }
  }

  /** After a lost answer: the files the server does not have yet (those that landed are counted). */
  async unsent(files) {
    const verdicts = await this.check(files);
    const rest = files.filter((file) => verdicts.get(file).status !== 'identical');
    const landed = files.length - rest.length;
    this.landed += landed;
    this.sent += sum(files) - sum(rest);
    return rest;
  }

  record(status, body, files) {
    if (body.task_id) this.addTask(body.task_id);
    this.landed += body.files?.length ?? 0;
    for (const { name, reason } of body.skipped ?? []) {
      if (reason.startsWith('identical')) this.landed += 1;  // it landed before, in a try whose answer was lost
      else this.skipped.push({ name, reason });
    }
    const errors = body.errors?.length ? body.errors
      : status >= 400 ? files.map((file) => ({ name: file.name, error: body.error ?? `refused (${status})` })) : [];
    this.refused.push(...errors);
  }

  addTask(id) {
    this.taskIds.add(id);
    this.uploader.remember(this);
  }

  finished(task) {
    this.done.set(task.id, task);
    this.settle();
  }

  job(job) {
    if (job.step_index !== 0) return;
    this.thumbnails.set(job.task_id, [job.progress_done, job.progress_total]);
    let done = 0;
    let total = 0;
    for (const [d, t] of this.thumbnails.values()) {
      done += d;
      total += t;
    }
    this.panel.words = `${stepWords(job.type)} ${done}/${total}`;
    if (this.sentAll && !this.over) this.panel.processing();
  }

  /** Everything sent and every task finished: one toast for the selection, and the panel says how it went. */
  settle() {
    if (!this.sentAll || this.over) return;
    if ([...this.taskIds].some((id) => !this.done.has(id))) {
      this.panel.processing();
      return;
    }
    this.over = true;
    this.uploader.selections.delete(this);
    const failed = [...this.done.values()].filter((task) => task.status === 'failed');
    if (failed.length) {
      toast(`${failed[0].label} failed`, { kind: 'error', detail: failed[0].error, unit: 'task' });
    } else if (this.taskIds.size) {
      toast('Upload processing completed', { kind: 'success', detail: count(this.landed, 'file'), unit: 'task' });
    }
    this.panel.finished();
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

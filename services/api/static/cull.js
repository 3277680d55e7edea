// Culling decisions: keep flags set from the grid, the keyboard or the loupe, shown at once, saved with
// PUT …/keep, counted in one toast with Undo, and undone one at a time (the loupe's `u`).
import { projectPath, put } from './api.js';
import { describe } from './photo.js';
import { toast } from './toasts.js';

export class Culler {
  /** grid: where photos are read and patched (optimistically, until SSE confirms). */
  constructor({ folder, grid }) {
    Object.assign(this, { folder, grid });
    this.history = [];  // [{filename, before, after, undone}], oldest first
    this.queues = new Map();  // filename → the last PUT for it: one photo's PUTs go in order
  }

  /** Set some keep flags of one photo; resolves false when nothing changed, rejects when the server refused. */
  async set(filename, flags) {
    const photo = this.grid.photos.get(filename);
    if (!photo) return false;
    const before = Object.fromEntries(Object.keys(flags).map((key) => [key, photo[key]]));
    if (Object.entries(flags).every(([key, value]) => before[key] === value)) return false;
    const entry = { filename, before, after: flags, undone: false };
    this.history.push(entry);  // now, not when saved: a quick `u` takes back this one
    if (this.history.length > 500) this.history.shift();
    try {
      await this.save(filename, flags, before);
    } catch (error) {
      this.history.splice(this.history.indexOf(entry), 1);
      throw error;
    }
    toast(`${filename}: ${describe(this.grid.photos.get(filename))}`, {
      group: 'Decisions saved', unit: 'photo', undo: () => this.revert(entry),
    });
    return true;
  }

  /** Take back the newest decision not yet undone; resolves to its photo's filename, or null. */
  async undoLast() {
    const entry = this.history.findLast((e) => !e.undone);
    if (!entry) return null;
    await this.revert(entry);
    toast(`Undone: ${entry.filename}`, { detail: describe(this.grid.photos.get(entry.filename)) });
    return entry.filename;
  }

  async revert(entry) {
    if (entry.undone) return;
    entry.undone = true;
    try {
      await this.save(entry.filename, entry.before, entry.after);
    } catch (error) {
      entry.undone = false;
      throw error;
    }
  }

  async save(filename, flags, before) {
    this.grid.patch(filename, flags);  // at once; the SSE item that follows says the same
    const previous = this.queues.get(filename) ?? Promise.resolve();
    const saved = previous.catch(() => {}).then(() => put(projectPath(this.folder, '/keep'), { updates: [{ filename, ...flags }] }));
    this.queues.set(filename, saved);
    try {
      await saved;
    } catch (error) {
      this.grid.patch(filename, before);
      toast(`Could not change ${filename}`, { kind: 'error', detail: error.message });
      throw error;
    } finally {
      if (this.queues.get(filename) === saved) this.queues.delete(filename);
    }
  }
}

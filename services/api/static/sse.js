// The live connection: GET /api/events as an EventSource. The browser reconnects by itself and
// sends Last-Event-ID; when it gives up (an error status), we reopen with ?last_event_id= so
// nothing is missed. `reset` means the server cannot resume: the page refetches.
import { get } from './api.js';

const EVENTS = ['task_update', 'job_update', 'item', 'item_removed', 'pending_changes', 'project_renamed',
  'project_deleted', 'project_restored',
  'lane_update', 'dead_letter', 'dead_letter_removed'];  // the last three: without ?project= only

export class Live {
  constructor({ folder = null, showMaintenance = false, onMessage, onReset, onStatus }) {
    Object.assign(this, { folder, showMaintenance, onMessage, onReset, onStatus });
    this.lastId = null;
    this.source = null;
    this.retryMs = 1000;
    this.timer = null;
    this.dropped = false;
    // Resolves when the first connection is open (or after a few seconds, whatever happened).
    this.opened = new Promise((resolve) => {
      this.resolveOpened = resolve;
      setTimeout(resolve, 3000);
    });
  }

  start() {
    this.close();
    const params = new URLSearchParams({ show_maintenance: String(this.showMaintenance) });
    if (this.folder) params.set('project', this.folder);
    if (this.lastId) params.set('last_event_id', this.lastId);
    const source = new EventSource(`/api/events?${params}`);
    this.source = source;
    for (const name of EVENTS) {
      source.addEventListener(name, (event) => {
        if (event.lastEventId) this.lastId = event.lastEventId;
        this.onMessage(name, JSON.parse(event.data));
      });
    }
    source.addEventListener('reset', (event) => {
      if (event.lastEventId) this.lastId = event.lastEventId;
      this.onReset();
    });
    source.addEventListener('open', () => {
      this.retryMs = 1000;
      this.resolveOpened();
      this.onStatus('live');
      // Back after a drop with no message seen yet: there is no id to resume from, so refetch.
      if (this.dropped && !this.lastId) this.onReset();
      this.dropped = false;
    });
    source.addEventListener('error', () => {
      if (source !== this.source) return;
      this.dropped = true;
      this.onStatus('reconnecting');
      if (source.readyState === EventSource.CLOSED) this.reopenLater();  // the browser gave up: we do not
    });
  }

  /** Follow with another show_maintenance, from where we are. */
  restart(showMaintenance) {
    this.showMaintenance = showMaintenance;
    this.start();
  }

  reopenLater() {
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      // A small authenticated GET first: a 401 (token changed, cookie gone) asks for the token.
      try { await get('/api/ui-config'); } catch { /* still down: EventSource tells us again */ }
      this.start();
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 15000);
  }

  close() {
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
  }
}

/** Shows "Reconnecting…" while the live connection is down. */
export function connectionStatus(el) {
  return (status) => {
    el.hidden = status === 'live';
    el.textContent = status === 'live' ? '' : 'Reconnecting…';
  };
}

// Talking to /api: JSON in and out, errors as ApiError, a 401 asks for the token once and retries.
import { signIn } from './auth.js';

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export const projectPath = (folder, rest = '') => `/api/projects/${encodeURIComponent(folder)}${rest}`;

let written = 0;  // the newest X-Darkroom-Seq this page was given
/** `?min_seq=` for a GET that must see what this page wrote (the read model may not have it yet). */
export const ownWrites = () => `min_seq=${written}`;

export async function api(method, path, body) {
  for (let attempt = 0; ; attempt += 1) {
    const init = { method, credentials: 'same-origin', headers: {} };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'the server cannot be reached');
    }
    if (response.status === 401 && attempt < 3) {
      await signIn();
      continue;
    }
    written = Math.max(written, Number(response.headers.get('X-Darkroom-Seq') ?? 0));
    const data = (response.headers.get('Content-Type') ?? '').includes('application/json')
      ? await response.json() : null;
    if (!response.ok) throw new ApiError(response.status, data?.error ?? `${response.status} ${response.statusText}`, data);
    return data;
  }
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);

/** Every photo of a project, following next_cursor. */
export async function allPhotos(folder) {
  const photos = [];
  let cursor = '';
  do {
    const page = await get(projectPath(folder, `/photos?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`));
    photos.push(...page.photos);
    cursor = page.next_cursor;
  } while (cursor);
  return photos;
}

/**
 * One multipart upload (field `photos`) with upload progress: XMLHttpRequest, because fetch cannot
 * report it. Resolves to {status, body} whatever the status; rejects when the connection fails
 * (ApiError status 0) or `signal` aborts it (`canceled` set).
 */
export async function sendFiles(folder, files, { overwrite = false, onProgress = () => {}, signal = null } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const result = await new Promise((resolve, reject) => {
      const form = new FormData();
      for (const file of files) form.append('photos', file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', projectPath(folder, `/upload${overwrite ? '?overwrite=true' : ''}`));
      xhr.responseType = 'json';
      xhr.upload.addEventListener('progress', (event) => {
        if (event.lengthComputable) onProgress(event.loaded, event.total);
      });
      const stop = () => xhr.abort();
      signal?.addEventListener('abort', stop, { once: true });
      const settle = (fn) => (value) => {
        signal?.removeEventListener('abort', stop);
        fn(value);
      };
      xhr.addEventListener('load', settle(() => resolve({ status: xhr.status, body: xhr.response ?? {} })));
      xhr.addEventListener('error', settle(() => reject(new ApiError(0, 'the connection failed during the upload'))));
      const canceled = () => reject(Object.assign(new ApiError(0, 'the upload was canceled'), { canceled: true }));
      xhr.addEventListener('abort', settle(canceled));
      if (signal?.aborted) canceled();
      else xhr.send(form);
    });
    if (result.status === 401 && attempt < 3) {
      await signIn();
      continue;
    }
    return result;
  }
}

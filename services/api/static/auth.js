// The token form: shown once when the server answers 401, then the session cookie does the rest.
import { h } from './dom.js';

let pending = null;

/** Resolves once POST /api/session has accepted a token (the cookie is then set). */
export function signIn() {
  pending ??= ask().finally(() => { pending = null; });
  return pending;
}

function ask() {
  return new Promise((resolve) => {
    const input = h('input', { type: 'password', name: 'token', required: true, autocomplete: 'current-password' });
    const problem = h('p', { class: 'form-error', role: 'alert' });
    const form = h('form', { class: 'stack' },
      h('h2', {}, 'Sign in'),
      h('p', {}, 'This Darkroom server needs its access token.'),
      h('label', { class: 'field' }, h('span', {}, 'Token'), input),
      problem,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
    const dialog = h('dialog', { class: 'token-dialog', 'aria-label': 'Sign in' }, form);
    dialog.addEventListener('cancel', (event) => event.preventDefault());  // nothing works without it
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      problem.textContent = '';
      try {
        const response = await fetch('/api/session', {
          method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ token: input.value }), credentials: 'same-origin',
        });
        if (response.ok) {
          dialog.close();
          dialog.remove();
          resolve();
          return;
        }
        problem.textContent = (await response.json().catch(() => ({}))).error ?? `sign-in failed (${response.status})`;
      } catch {
        problem.textContent = 'the server cannot be reached';
      }
      input.select();
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

// Elexirion chat page. Plain ES2020, no dependencies, never uses innerHTML:
// every piece of server data reaches the page through textContent or text nodes.
'use strict';

const TOKEN_KEY = 'elx.token';
const SESSION_KEY = 'elx.session';
const POLL_MS = 2000;
const COLLAPSE_OVER = 6;

const $ = (id) => document.getElementById(id);
let token = null;
let session = null;
let busy = false;
let pollTimer = null;
let polling = false;
const openPaths = new Set(); // collapsed tree groups the user expanded, by path

// ---------- helpers ----------

function el(tag, cls, text, ...children) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  children.forEach((c) => node.append(c));
  return node;
}

function store(key, value) {
  try {
    if (value === null) sessionStorage.removeItem(key); else sessionStorage.setItem(key, value);
  } catch (_) { /* storage disabled: keep it in memory only */ }
}

function load(key) {
  try { return sessionStorage.getItem(key); } catch (_) { return null; }
}

// ---------- auth ----------

function initToken() {
  const fromHash = new URLSearchParams(location.hash.replace(/^#/, '')).get('token');
  if (location.hash) history.replaceState(null, '', location.pathname);
  if (fromHash && fromHash.trim()) store(TOKEN_KEY, fromHash.trim());
  token = load(TOKEN_KEY);
  if (!token) showTokenForm('');
}

function showTokenForm(message) {
  token = null;
  store(TOKEN_KEY, null);
  $('auth').hidden = false;
  $('token-error').textContent = message || '';
  $('token-error').hidden = !message;
  $('token-input').focus();
  $('tree').replaceChildren(el('p', 'muted', 'waiting for a token'));
}

function onTokenSubmit(event) {
  event.preventDefault();
  const value = $('token-input').value.trim();
  if (!value) return;
  token = value;
  store(TOKEN_KEY, value);
  $('token-input').value = '';
  $('auth').hidden = true;
  $('token-error').hidden = true;
  $('message').focus();
  poll();
}

class AuthError extends Error {}

// Adds the bearer token and parses JSON; a 401 shows the token form and throws AuthError.
// Network failures propagate as the TypeError that fetch() throws.
async function api(path, options = {}) {
  if (!token) throw new AuthError('no token');
  const headers = Object.assign({ Authorization: `Bearer ${token}` }, options.headers || {});
  const res = await fetch(path, Object.assign({}, options, { headers, cache: 'no-store' }));
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  if (res.status === 401) {
    const message = (body && typeof body.error === 'string' && body.error) || 'the token was refused';
    showTokenForm(message);
    throw new AuthError(message);
  }
  return { res, body };
}

// ---------- session ----------

function setSession(id) {
  session = id || null;
  store(SESSION_KEY, session);
  $('session').textContent = session || 'none';
  $('session').title = session ? `session ${session}` : 'no session yet: the first answer starts one';
}

function newSession() {
  setSession(null);
  append(el('p', 'note', 'new session'));
  $('message').focus();
}

// ---------- safe Markdown renderer (builds DOM, never parses HTML) ----------

const INLINE = /`([^`\n]+)`|\*\*(\S(?:[^\n]*?\S)?)\*\*/g;

function renderInline(parent, text) {
  let last = 0;
  for (const m of [...text.matchAll(INLINE)]) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    if (m[1] !== undefined) parent.append(el('code', null, m[1]));
    else parent.append(renderInline(el('strong'), m[2]));
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
  return parent;
}

function renderMarkdown(source) {
  const root = document.createDocumentFragment();
  const lines = String(source ?? '').replace(/\r\n?/g, '\n').split('\n');
  let para = [];
  let list = null; // { type: 'ul'|'ol', node }
  const flush = () => {
    if (para.length) {
      const p = el('p');
      para.forEach((line, i) => { if (i) p.append(el('br')); renderInline(p, line); });
      root.append(p);
    }
    para = [];
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*(`{3,})\s*([\w+.#-]*)/);
    const heading = line.match(/^(#{1,3})\s+(.*?)\s*#*\s*$/);
    const bullet = line.match(/^\s*[-*]\s+(.*)$/);
    const numbered = line.match(/^\s*(\d{1,9})[.)]\s+(.*)$/);
    if (fence) {
      flush();
      const body = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) body.push(lines[i]);
      const code = el('code', null, body.join('\n'));
      if (fence[2]) code.dataset.lang = fence[2];
      root.append(el('pre', null, null, code));
    } else if (!line.trim()) {
      flush();
    } else if (heading) {
      flush();
      root.append(renderInline(el(`h${heading[1].length + 2}`, 'md-h'), heading[2]));
    } else if (bullet || numbered) {
      const type = bullet ? 'ul' : 'ol';
      if (para.length || !list || list.type !== type) {
        flush();
        list = { type, node: el(type) };
        if (numbered && numbered[1] !== '1') list.node.start = Number(numbered[1]);
        root.append(list.node);
      }
      list.node.append(renderInline(el('li'), bullet ? bullet[1] : numbered[2]));
    } else if (list && /^\s+\S/.test(line)) { // indented continuation of the last item
      renderInline(list.node.lastChild, ` ${line.trim()}`);
    } else {
      list = null;
      para.push(line);
    }
  }
  flush();
  return root;
}

// ---------- message log ----------

function append(node) {
  const log = $('log');
  log.append(node);
  log.scrollTop = log.scrollHeight;
  return node;
}

function addError(headline, detail, metaText) {
  const msg = el('div', 'message error', null, el('p', 'err-head', headline));
  if (detail) msg.append(el('div', 'body plain', detail));
  if (metaText) msg.append(el('p', 'meta', metaText));
  return append(msg);
}

function formatSeconds(data) {
  let s = Number(data.execution_time);
  if (data.execution_time === null || !Number.isFinite(s)) s = Number(data.execution_time_ms) / 1000;
  return Number.isFinite(s) ? `${s.toFixed(2)} s` : null;
}

function metaLine(data) {
  const fb = data.fallback_used && typeof data.fallback_used === 'object' ? data.fallback_used : null;
  return [data.pipeline_used, formatSeconds(data), data.job_id ? `job ${data.job_id}` : null,
    fb ? `fallback: ${fb.kind || 'yes'}` : null].filter(Boolean).join(' · ');
}

function addAnswer(data) {
  const meta = el('p', 'meta', metaLine(data));
  const fb = data.fallback_used;
  if (fb && typeof fb === 'object') {
    meta.title = [fb.reason, fb.pipeline && `pipeline ${fb.pipeline}`, fb.failed_job && `failed job ${fb.failed_job}`]
      .filter(Boolean).join('; ');
  }
  const body = el('div', 'body md', null, renderMarkdown(data.response));
  const msg = el('div', 'message assistant', null, body, meta);
  msg.dataset.pipeline = data.pipeline_used || '';
  msg.dataset.job = data.job_id || '';
  append(msg);
}

function addPending() {
  const counter = el('span', 'elapsed', '0 s');
  counter.setAttribute('aria-hidden', 'true'); // announce "routing…" once, not every tick
  const pending = append(el('div', 'pending', 'routing… ', counter));
  const started = performance.now();
  const timer = setInterval(() => {
    counter.textContent = `${Math.floor((performance.now() - started) / 1000)} s`;
  }, 250);
  return () => { clearInterval(timer); pending.remove(); };
}

function retryAfter(res) {
  const raw = (res.headers.get('Retry-After') || '').trim();
  if (!raw) return null;
  if (/^\d+$/.test(raw)) return Number(raw);
  const at = Date.parse(raw);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function showChatResult(res, data) {
  if (!res.ok) {
    let text = (data && typeof data.error === 'string' && data.error) || `HTTP ${res.status}`;
    const wait = retryAfter(res);
    if (wait !== null) text += ` — retry in ${wait} s`;
    addError(text, null, `HTTP ${res.status}${data && data.code ? ` · ${data.code}` : ''}`);
    return;
  }
  if (!data || typeof data !== 'object') { addError('the daemon sent an unreadable answer'); return; }
  if (data.session_id) setSession(data.session_id);
  if (data.status === 'completed') { addAnswer(data); return; }
  const err = data.error;
  const kind = err && typeof err === 'object' ? err.kind : null;
  const errText = err && typeof err === 'object' ? err.message : (typeof err === 'string' ? err : null);
  const response = typeof data.response === 'string' ? data.response.trim() : '';
  let detail = response || errText || '';
  if (response && errText && errText !== response) detail += `\n${errText}`;
  addError([data.status || 'error', kind].filter(Boolean).join(' · '), detail, metaLine(data));
}

async function onChatSubmit(event) {
  event.preventDefault();
  const box = $('message');
  const text = box.value.trim();
  if (!text || busy) return;
  if (!token) { showTokenForm('a token is needed before sending'); return; }
  busy = true;
  $('send').disabled = true;
  append(el('div', 'message user', null, el('div', 'body plain', text)));
  box.value = '';
  const done = addPending();
  const payload = session ? { message: text, session_id: session } : { message: text };
  try {
    const { res, body } = await api('/api/agent/chat', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(payload),
    });
    done();
    showChatResult(res, body);
  } catch (e) {
    done();
    addError(e instanceof AuthError ? `not sent: ${e.message}` : 'the daemon did not answer');
  } finally {
    busy = false;
    $('send').disabled = false;
  }
}

function onMessageKey(event) {
  if (event.key !== 'Enter' || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  if (!busy) $('chat-form').requestSubmit();
}

// ---------- supervision tree ----------

function dot(state) {
  const cls = state === 'running' ? 'ok' : state === 'restarting' ? 'warn' : 'bad';
  const d = el('span', `dot ${cls}`);
  d.setAttribute('role', 'img');
  d.setAttribute('aria-label', state || 'unknown');
  d.title = state || 'unknown';
  return d;
}

function detailPairs(detail) {
  if (Array.isArray(detail)) return detail.filter((p) => Array.isArray(p) && p.length >= 2);
  return detail && typeof detail === 'object' ? Object.entries(detail) : [];
}

function summarise(children) {
  const counts = new Map();
  children.forEach((c) => counts.set(c.state || 'unknown', (counts.get(c.state || 'unknown') || 0) + 1));
  const seen = [...counts.keys()];
  const noun = children.every((c) => c.kind === 'worker') ? 'workers' : 'children';
  const states = seen.length === 1 ? `all ${seen[0]}` : [...counts].map(([s, n]) => `${n} ${s}`).join(', ');
  let worst = 'failed';
  if (seen.every((s) => s === 'running')) worst = 'running';
  else if (seen.every((s) => s === 'running' || s === 'restarting')) worst = 'restarting';
  return { text: `${children.length} ${noun} (${states})`, worst };
}

function renderNode(node) {
  const name = el('span', 'node-id', node.id || node.path || '?');
  const uptime = typeof node.uptime_s === 'number' ? `, up ${node.uptime_s.toFixed(1)} s` : '';
  name.title = `${node.path || ''} (${node.kind || '?'}, ${node.state || '?'}${uptime})`;
  const row = el('div', 'node', null, dot(node.state), name);
  if (node.kind && node.kind !== 'worker') row.append(el('span', 'kind', node.kind));
  if (node.restart_count > 0) row.append(el('span', 'restarts', `↻ ${node.restart_count}`));
  if (node.job) row.append(el('span', 'job', `job ${node.job}${node.step ? ` · ${node.step}` : ''}`));
  const pairs = detailPairs(node.detail);
  if (pairs.length) row.append(el('span', 'detail', pairs.map(([k, v]) => `${k}=${v}`).join(' ')));
  const li = el('li', null, null, row);
  const children = Array.isArray(node.children) ? node.children : [];
  if (!children.length) return li;
  const ul = el('ul', 'tree', null, ...children.map(renderNode));
  // Pools and job lists collapse; the top of the tree (root and its children) never does.
  const leaves = children.every((c) => !(Array.isArray(c.children) && c.children.length));
  if (children.length <= COLLAPSE_OVER || !leaves) { li.append(ul); return li; }
  const key = node.path || node.id || '';
  const sum = summarise(children);
  const summary = el('summary', null, null, dot(sum.worst), sum.text);
  summary.dataset.path = key;
  const details = el('details', null, null, summary, ul);
  details.open = openPaths.has(key);
  details.addEventListener('toggle', () => {
    if (details.open) openPaths.add(key); else openPaths.delete(key);
  });
  li.append(details);
  return li;
}

async function refreshTree() {
  const box = $('tree');
  try {
    const { res, body } = await api('/api/tree');
    if (!res.ok || !body || typeof body !== 'object') {
      box.replaceChildren(el('p', 'muted', `tree unavailable: ${(body && body.error) || `HTTP ${res.status}`}`));
      return;
    }
    // Rebuilding every 2 s must not steal keyboard focus from a group summary.
    const active = document.activeElement;
    const focusKey = active && box.contains(active) && active.dataset ? active.dataset.path : null;
    box.replaceChildren(el('ul', 'tree top-level', null, renderNode(body)));
    const again = focusKey && [...box.querySelectorAll('summary')].find((s) => s.dataset.path === focusKey);
    if (again) again.focus();
  } catch (e) {
    if (!(e instanceof AuthError)) box.replaceChildren(el('p', 'muted', 'tree unavailable: the daemon did not answer'));
  }
}

// ---------- health ----------

function setBadge(word) {
  $('health-status').textContent = word;
  $('health-status').className = `badge ${['healthy', 'degraded', 'critical'].includes(word) ? word : 'unknown'}`;
}

function renderCheck(c) {
  const li = el('li', `check ${c.status === 'warn' ? 'warn' : 'bad'}`, null,
    el('strong', null, c.name || '?'), ` ${c.status || '?'}: ${c.message || ''}`);
  if (c.value !== undefined && c.value !== null && c.value !== '') {
    li.append(el('span', 'muted', ` (${c.value}${c.threshold ? ` / ${c.threshold}` : ''})`));
  }
  return li;
}

async function refreshHealth() {
  const list = $('checks');
  const down = $('down');
  try {
    const { res, body } = await api('/api/health');
    // Use the body whenever it is a report, whatever the status code.
    if (!body || typeof body.status !== 'string' || body.status === 'error') {
      setBadge('unknown');
      list.replaceChildren(el('li', 'check bad', (body && body.error) || `HTTP ${res.status}`));
      down.hidden = true;
      return;
    }
    setBadge(body.status);
    const checks = Array.isArray(body.checks) ? body.checks : [];
    list.replaceChildren(...checks.filter((c) => c && c.status !== 'ok').map(renderCheck));
    if (body.ready === false) list.append(el('li', 'check warn', 'daemon not ready'));
    const paths = Array.isArray(body.down) ? body.down : [];
    down.textContent = paths.length ? `down: ${paths.join(', ')}` : '';
    down.hidden = !paths.length;
  } catch (e) {
    if (e instanceof AuthError) return;
    setBadge('unreachable');
    list.replaceChildren();
    down.hidden = true;
  }
}

// One refresh at a time: the next one is scheduled only after both requests settled,
// and nothing is scheduled while the tab is hidden or there is no token.
async function poll() {
  clearTimeout(pollTimer);
  pollTimer = null;
  if (polling || document.hidden || !token) return;
  polling = true;
  try {
    await Promise.allSettled([refreshTree(), refreshHealth()]);
  } finally {
    polling = false;
  }
  if (!document.hidden && token && pollTimer === null) pollTimer = setTimeout(poll, POLL_MS);
}

// ---------- start ----------

initToken();
setSession(load(SESSION_KEY));
$('token-form').addEventListener('submit', onTokenSubmit);
$('chat-form').addEventListener('submit', onChatSubmit);
$('message').addEventListener('keydown', onMessageKey);
$('new-session').addEventListener('click', newSession);
document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });
if (token) $('message').focus();
poll();

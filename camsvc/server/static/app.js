// camsvc dashboard: one WebSocket to /ws speaking JSON-RPC 2.0.
//
// Plain modern JavaScript, no build step and no third-party code.  The page
// authenticates (a token pasted once, kept in sessionStorage, or none when the
// server allows anonymous access), loads the cameras, health, storage and file
// lists, then keeps them current from the server's notifications
// (camera_status_update, recording_status_update, system_status_update) plus a
// light refresh of the parts that have no notification (stream readers,
// storage).  DOM is built with createElement (never innerHTML with data).
'use strict';

(() => {
  const TOKEN_KEY = 'camsvc.token';
  const CALL_TIMEOUT_MS = 15000;
  const SLOW_CALL_TIMEOUT_MS = 45000;
  const REFRESH_MS = 10000;
  const FILES_REFRESH_MS = 60000;
  const PAGE_SIZE = 50;

  // -- tiny DOM helpers -------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
      else if (key in el && typeof value !== 'string') el[key] = value;
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function svg(path, viewBox = '0 0 24 24') {
    const ns = 'http://www.w3.org/2000/svg';
    const el = document.createElementNS(ns, 'svg');
    el.setAttribute('viewBox', viewBox);
    el.setAttribute('aria-hidden', 'true');
    el.setAttribute('fill', 'none');
    el.setAttribute('stroke', 'currentColor');
    el.setAttribute('stroke-width', '1.8');
    el.setAttribute('stroke-linecap', 'round');
    el.setAttribute('stroke-linejoin', 'round');
    for (const d of [].concat(path)) {
      const p = document.createElementNS(ns, 'path');
      p.setAttribute('d', d);
      el.append(p);
    }
    return el;
  }

  const ICON_CAMERA = ['M3 7.5A2.5 2.5 0 0 1 5.5 5h9A2.5 2.5 0 0 1 17 7.5v9a2.5 2.5 0 0 1-2.5 2.5h-9A2.5 2.5 0 0 1 3 16.5z', 'M17 10l4-2.5v9L17 14'];
  const ICON_FILM = ['M4 5h16v14H4z', 'M8 5v14', 'M16 5v14', 'M4 9h4', 'M4 15h4', 'M16 9h4', 'M16 15h4'];
  const ICON_DOWNLOAD = ['M12 4v11', 'M7 10.5l5 5 5-5', 'M5 19.5h14'];
  const ICON_TRASH = ['M4.5 7h15', 'M9.5 7V4.5h5V7', 'M6.5 7l1 12.5h9l1-12.5', 'M10 11v5.5', 'M14 11v5.5'];
  const ICON_IMAGE = ['M4 5h16v14H4z', 'M4 16l5-5 4 4 3-3 4 4', 'M15 9.5a1 1 0 1 0 0-.01'];

  // -- formatting ---------------------------------------------------------------

  function humanSize(n) {
    if (typeof n !== 'number' || !isFinite(n)) return '–';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return i === 0 ? `${n} B` : `${n.toFixed(n >= 100 ? 0 : 1)} ${units[i]}`;
  }

  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const hh = Math.floor(seconds / 3600);
    const mm = Math.floor((seconds % 3600) / 60);
    const ss = seconds % 60;
    const two = (v) => String(v).padStart(2, '0');
    return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
  }

  function humanDuration(seconds) {
    if (typeof seconds !== 'number' || !isFinite(seconds)) return '';
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
    return clock(seconds);
  }

  function humanUptime(seconds) {
    if (typeof seconds !== 'number') return '';
    const d = Math.floor(seconds / 86400);
    const hrs = Math.floor((seconds % 86400) / 3600);
    const min = Math.floor((seconds % 3600) / 60);
    if (d) return `${d} d ${hrs} h`;
    if (hrs) return `${hrs} h ${min} min`;
    if (min) return `${min} min`;
    return `${Math.floor(seconds)} s`;
  }

  function toDate(value) {
    if (typeof value === 'number') return new Date(value * 1000);
    if (typeof value === 'string') {
      const t = Date.parse(value);
      if (!Number.isNaN(t)) return new Date(t);
    }
    return null;
  }

  function humanTime(value) {
    const d = toDate(value);
    if (!d) return '';
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
    return sameDay ? time : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
  }

  function pick(obj, keys) {
    if (!obj || typeof obj !== 'object') return undefined;
    for (const key of keys) {
      if (typeof obj[key] === 'number' && isFinite(obj[key])) return obj[key];
    }
    return undefined;
  }

  // Links come from the server; still, only ever make http(s) or same-site ones.
  function safeUrl(url) {
    if (typeof url !== 'string') return null;
    if (url.startsWith('/') && !url.startsWith('//')) return url;
    return /^https?:\/\//i.test(url) ? url : null;
  }

  function titleCase(name) {
    return String(name).replace(/[_-]+/g, ' ').replace(/^\w/, (c) => c.toUpperCase());
  }

  // -- errors in plain words -------------------------------------------------------

  class RpcError extends Error {
    constructor(code, message, data) {
      super(message || `error ${code}`);
      this.code = code;
      this.data = data;
    }
  }

  class TransportError extends Error {}

  function plain(err, action) {
    const what = action ? `Could not ${action}. ` : '';
    if (err instanceof TransportError) return `${what}${err.message}`;
    if (!(err instanceof RpcError)) return `${what}${err && err.message ? err.message : String(err)}`;
    const data = err.data && typeof err.data === 'object' ? err.data : {};
    switch (err.code) {
      case -32001: return `${what}You need to sign in again (your token is missing or has expired).`;
      case -32002: return `${what}Too many requests right now. Wait a moment and try again.`;
      case -32003: return `${what}Your access does not allow this${data.required_role ? ` (it needs the ${data.required_role} role)` : ''}.`;
      case -32004: return `${what}That camera is not available. It may have been unplugged.`;
      case -32005: return `${what}${err.message}.`.replace(/\.\.$/, '.');
      case -32006: return `${what}The media server (MediaMTX) is not answering, so live streams, recording and stream snapshots are unavailable for now.`;
      case -32007: return `${what}The camera box is running out of disk space. Delete old recordings or snapshots.`;
      case -32008: return `${what}This is not supported here${err.message ? `: ${err.message}` : ''}.`;
      case -32009: return `${what}The file no longer exists. The list has been refreshed.`;
      case -32601: return `${what}This server does not offer that feature.`;
      case -32602: return `${what}The server refused the request: ${err.message}.`;
      default: return `${what}The server reported a problem: ${err.message}.`;
    }
  }

  // -- the JSON-RPC connection -------------------------------------------------------

  class Connection {
    constructor(url, handlers) {
      this.url = url;
      this.handlers = handlers;
      this.nextId = 1;
      this.pending = new Map();
      this.ws = null;
    }

    open() {
      return new Promise((resolve, reject) => {
        let opened = false;
        const ws = new WebSocket(this.url);
        this.ws = ws;
        ws.onopen = () => { opened = true; resolve(); };
        ws.onmessage = (event) => this.received(event.data);
        ws.onclose = (event) => {
          const why = event.reason || (event.code === 1006 ? 'the connection dropped' : `code ${event.code}`);
          for (const { reject: fail, timer } of this.pending.values()) {
            clearTimeout(timer);
            fail(new TransportError('The connection to the camera box was lost.'));
          }
          this.pending.clear();
          if (!opened) reject(new TransportError(`Cannot reach camsvc at ${this.url}.`));
          else this.handlers.closed(why);
        };
      });
    }

    get isOpen() { return this.ws !== null && this.ws.readyState === WebSocket.OPEN; }

    close() { if (this.ws) this.ws.close(1000, 'page closed'); }

    call(method, params, timeoutMs = CALL_TIMEOUT_MS) {
      if (!this.isOpen) return Promise.reject(new TransportError('Not connected to the camera box.'));
      const id = this.nextId++;
      const message = { jsonrpc: '2.0', method, id };
      if (params !== undefined) message.params = params;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new TransportError('The server did not answer in time.'));
        }, timeoutMs);
        this.pending.set(id, { resolve, reject, timer });
        this.ws.send(JSON.stringify(message));
      });
    }

    received(text) {
      let message;
      try { message = JSON.parse(text); } catch (e) { return; }
      for (const item of Array.isArray(message) ? message : [message]) {
        if (!item || typeof item !== 'object') continue;
        if (item.method && item.id === undefined) {
          this.handlers.notification(item.method, item.params);
          continue;
        }
        const entry = this.pending.get(item.id);
        if (!entry) continue;
        this.pending.delete(item.id);
        clearTimeout(entry.timer);
        if (item.error) entry.reject(new RpcError(item.error.code, item.error.message, item.error.data));
        else entry.resolve(item.result);
      }
    }
  }

  // -- state -------------------------------------------------------------------------

  const state = {
    conn: null,
    ready: false,
    attempt: 0,
    retryTimer: null,
    retryAt: 0,
    token: sessionStorage.getItem(TOKEN_KEY),
    role: null,
    info: null,
    methods: new Set(),
    status: null,
    storage: null,
    cameras: new Map(),
    details: new Map(),
    streams: new Map(),
    streamsKnown: false,
    recStart: new Map(),
    busy: new Map(),
    previews: new Map(),
    files: { recordings: null, snapshots: null },
    limits: { recordings: PAGE_SIZE, snapshots: PAGE_SIZE },
    seenFiles: { recordings: new Set(), snapshots: new Set() },
    cameraListError: null,
  };

  const has = (method) => state.methods.size === 0 || state.methods.has(method);
  const canOperate = () => !state.role || ['operator', 'admin'].includes(String(state.role).toLowerCase());

  function call(method, params, timeoutMs) {
    if (!state.conn) return Promise.reject(new TransportError('Not connected to the camera box.'));
    return state.conn.call(method, params, timeoutMs).catch((err) => {
      // The session ended under us (token expired or revoked, secret rotated).
      if (err instanceof RpcError && err.code === -32001 && method !== 'authenticate' && state.ready) sessionEnded();
      throw err;
    });
  }

  let renewing = null;
  function sessionEnded() {
    if (renewing) return;
    state.ready = false;
    renewing = (async () => {
      try {
        if (!state.token) {
          showLogin('Your session has ended. Sign in again.');
          return;
        }
        const auth = await call('authenticate', { auth_token: state.token });
        state.role = auth && auth.role ? auth.role : null;
        state.ready = true;
        await loadAll();
      } catch (err) {
        if (err instanceof TransportError) return;
        forgetToken();
        showLogin(refusal(err));
      } finally {
        renewing = null;
      }
    })();
  }

  // -- connection life cycle ------------------------------------------------------------

  function wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws`;
  }

  // Open the WebSocket (no sign-in); resolves with it, rejects with a TransportError.
  async function openConnection() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    setConnection('connecting');
    const conn = new Connection(wsUrl(), {
      notification: onNotification,
      closed: (why) => { if (state.conn === conn) lost(why); },
    });
    state.conn = conn;
    await conn.open();
    state.attempt = 0;
    setConnection('connected');
    return conn;
  }

  async function connect() {
    const attempt = openConnection();
    try {
      await attempt;
    } catch (err) {
      scheduleRetry(err.message);
      return;
    }
    try {
      await signIn();
    } catch (err) {
      if (err instanceof TransportError) return; // the close handler reconnects
      toast(plain(err, 'load the dashboard'), 'error');
    }
  }

  function lost(why) {
    state.ready = false;
    if ($('login-dialog').open) {
      // camsvc closes connections that stay unauthenticated (auth.login_timeout): no need
      // to reconnect until the token is submitted.
      state.conn = null;
      setConnection('signin');
      return;
    }
    scheduleRetry(`Connection lost (${why}).`);
  }

  function scheduleRetry(reason) {
    const base = Math.min(30, 0.5 * 2 ** state.attempt);
    const delay = base * (0.75 + Math.random() * 0.5);
    state.attempt += 1;
    state.retryAt = Date.now() + delay * 1000;
    setConnection('offline', reason);
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(connect, delay * 1000);
  }

  // Authenticate with the kept token (unless just done), then load everything.
  async function signIn(authenticated = false) {
    if (state.token && !authenticated) {
      try {
        const auth = await call('authenticate', { auth_token: state.token });
        state.role = auth && auth.role ? auth.role : null;
        $('sign-out').hidden = false;
      } catch (err) {
        if (err instanceof RpcError && err.code === -32601) {
          state.role = null; // a server without authentication
        } else if (err instanceof RpcError && (err.code === -32001 || err.code === -32002)) {
          forgetToken();
          showLogin(refusal(err));
          return;
        } else {
          throw err;
        }
      }
    }
    try {
      state.info = await call('get_server_info');
    } catch (err) {
      if (err instanceof RpcError && err.code === -32001) {
        showLogin();
        return;
      }
      throw err;
    }
    state.methods = new Set(state.info.methods || []);
    if (!state.token) state.role = state.info.auth_required ? null : 'admin';
    state.ready = true;
    renderServer();
    await loadAll();
  }

  function refusal(err) {
    if (err instanceof RpcError && err.code === -32001) {
      return `The token was refused: ${err.message.replace(/^Authentication failed:\s*/i, '')}.`;
    }
    if (err instanceof RpcError && err.code === -32002) {
      const wait = err.data && err.data.retry_after ? ` Try again in ${Math.ceil(err.data.retry_after)} s.` : ' Try again later.';
      return `Too many failed attempts.${wait}`;
    }
    return plain(err, 'sign in');
  }

  function forgetToken() {
    state.token = null;
    state.role = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('sign-out').hidden = true;
  }

  function showLogin(message) {
    setConnection('signin');
    const dialog = $('login-dialog');
    const error = $('login-error');
    error.hidden = !message;
    error.textContent = message || '';
    if (!dialog.open) dialog.showModal();
    $('login-token').focus();
  }

  async function submitLogin(event) {
    event.preventDefault();
    const input = $('login-token');
    const token = input.value.trim();
    if (!token) return;
    const button = $('login-submit');
    button.disabled = true;
    try {
      if (!state.conn || !state.conn.isOpen) await openConnection();
      const auth = await call('authenticate', { auth_token: token });
      state.token = token;
      state.role = auth && auth.role ? auth.role : null;
      sessionStorage.setItem(TOKEN_KEY, token);
      input.value = '';
      $('login-dialog').close();
      $('sign-out').hidden = false;
      setConnection('connected');
      await signIn(true);
    } catch (err) {
      const error = $('login-error');
      error.hidden = false;
      error.textContent = refusal(err);
    } finally {
      button.disabled = false;
    }
  }

  // -- loading -----------------------------------------------------------------------

  async function loadAll() {
    await Promise.all([
      loadCameras(),
      loadStatus(),
      loadStorage(),
      loadStreams(),
      loadFiles('recordings'),
      loadFiles('snapshots'),
    ]);
  }

  function quiet(err, what) {
    if (err instanceof TransportError) return;
    if (err instanceof RpcError && err.code === -32601) return;
    console.warn(`camsvc: ${what} failed`, err);
  }

  async function loadCameras() {
    if (!has('get_camera_list')) {
      state.cameraListError = 'This server does not list cameras (get_camera_list is not available).';
      renderCameras();
      return;
    }
    try {
      const result = await call('get_camera_list');
      state.cameraListError = null;
      const seen = new Set();
      for (const cam of result.cameras || []) {
        seen.add(cam.camera_id);
        mergeCamera(cam);
      }
      for (const id of [...state.cameras.keys()]) if (!seen.has(id)) state.cameras.delete(id);
      renderCameras();
      for (const cam of state.cameras.values()) loadDetails(cam.camera_id);
    } catch (err) {
      state.cameraListError = plain(err, 'list the cameras');
      renderCameras();
    }
  }

  function mergeCamera(cam) {
    if (!cam || !cam.camera_id) return null;
    const before = state.cameras.get(cam.camera_id);
    state.cameras.set(cam.camera_id, { ...(before || {}), ...cam });
    if (cam.recording === false) state.recStart.delete(cam.camera_id);
    return before;
  }

  async function loadDetails(cameraId) {
    const cam = state.cameras.get(cameraId);
    if (!cam || cam.status === 'DISCONNECTED') return;
    try {
      if (has('get_camera_status')) {
        const detail = await call('get_camera_status', { device: cameraId });
        state.details.set(cameraId, detail);
        if (detail.recording && !state.recStart.get(cameraId)) findRecordingStart(cameraId);
      } else if (has('get_camera_capabilities')) {
        const caps = await call('get_camera_capabilities', { device: cameraId });
        state.details.set(cameraId, { capabilities: caps });
      } else {
        return;
      }
      renderCamera(cameraId);
    } catch (err) {
      quiet(err, `details of ${cameraId}`);
    }
  }

  async function loadStatus() {
    try {
      state.status = await call('get_status');
    } catch (err) {
      quiet(err, 'get_status');
    }
    renderHealth();
  }

  async function loadStorage() {
    if (!has('get_storage_info')) { renderStorage(); return; }
    try {
      state.storage = await call('get_storage_info');
    } catch (err) {
      quiet(err, 'get_storage_info');
    }
    renderStorage();
  }

  function streamItems(result) {
    if (Array.isArray(result)) return result;
    if (!result || typeof result !== 'object') return [];
    for (const key of ['streams', 'paths', 'items']) {
      if (Array.isArray(result[key])) return result[key];
      if (result[key] && typeof result[key] === 'object') {
        return Object.entries(result[key]).map(([name, v]) => ({ name, ...v }));
      }
    }
    return Object.entries(result)
      .filter(([, v]) => v && typeof v === 'object' && !Array.isArray(v))
      .map(([name, v]) => ({ name, ...v }));
  }

  async function loadStreams() {
    if (!has('get_streams')) return;
    try {
      const result = await call('get_streams');
      state.streams.clear();
      for (const item of streamItems(result)) {
        const name = item.camera_id || item.name || item.path;
        if (name) state.streams.set(name, item);
      }
      state.streamsKnown = true;
    } catch (err) {
      state.streamsKnown = false;
      state.streamsError = err;
      quiet(err, 'get_streams');
    }
    for (const id of state.cameras.keys()) renderCamera(id);
  }

  async function loadFiles(kind) {
    const method = `list_${kind}`;
    if (!has(method)) { state.files[kind] = null; renderFiles(kind); return; }
    try {
      state.files[kind] = await call(method, { limit: state.limits[kind], offset: 0 });
    } catch (err) {
      quiet(err, method);
    }
    renderFiles(kind);
  }

  // -- notifications -------------------------------------------------------------------

  function onNotification(method, params) {
    if (!state.ready) return;
    if (method === 'camera_status_update') cameraUpdate(params);
    else if (method === 'recording_status_update') recordingUpdate(params);
    else if (method === 'system_status_update') systemUpdate(params);
    else if (method === 'camera_controls_update') controlsUpdate(params);
  }

  function cameraUpdate(cam) {
    if (!cam || !cam.camera_id) return;
    const before = mergeCamera(cam);
    const label = cam.name || cam.camera_id;
    if (!before && cam.status !== 'DISCONNECTED') toast(`Camera connected: ${label}`, 'ok');
    else if (before && before.status !== cam.status) {
      if (cam.status === 'DISCONNECTED') toast(`Camera disconnected: ${label}`, 'warn');
      else if (cam.status === 'CONNECTED') toast(`Camera connected again: ${label}`, 'ok');
      else if (cam.status === 'ERROR') toast(`Camera problem: ${label}${cam.error ? ` (${cam.error})` : ''}`, 'error');
    }
    renderCameras();
    if (cam.status !== 'DISCONNECTED' && (!before || before.status !== cam.status || before.device !== cam.device)) {
      loadDetails(cam.camera_id);
      setTimeout(loadStreams, 1500);
    }
  }

  // recording_status_update: {device, camera_id, status, filename, duration, session_id, reason?}.
  function recordingUpdate(p) {
    if (!p) return;
    setTimeout(loadStreams, 1200); // a recording keeps a reader on the stream: it goes live
    const id = p.camera_id || p.device;
    const cam = state.cameras.get(id) || [...state.cameras.values()].find((c) => c.device === p.device);
    const label = cam ? cam.name || cam.camera_id : id;
    const status = String(p.status || '').toUpperCase();
    const active = status === 'STARTED' || status === 'RECORDING';
    if (cam) {
      cam.recording = active;
      if (active && !state.recStart.get(cam.camera_id)) {
        // STARTED's duration is the requested one; a resumed session's start is looked up.
        if (p.reason === 'resumed') findRecordingStart(cam.camera_id);
        else state.recStart.set(cam.camera_id, Date.now());
      }
      if (!active) state.recStart.delete(cam.camera_id);
      renderCamera(cam.camera_id);
    }
    if (active) return;
    const length = typeof p.duration === 'number' ? ` after ${humanDuration(p.duration)}` : '';
    const reason = p.reason || '';
    if (status === 'STOPPED' && reason === 'duration') toast(`Recording on ${label} finished${length}, as set.`, 'ok');
    else if (status === 'STOPPED' && reason === 'shutdown') toast(`Recording on ${label} stopped: camsvc is shutting down.`, 'warn');
    else if (reason === 'camera_disconnected') toast(`Recording on ${label} stopped${length}: the camera was unplugged. What was recorded is saved.`, 'error');
    else if (reason === 'not_resumable') toast(`The recording on ${label} could not be resumed after camsvc restarted.`, 'error');
    else if (status === 'FAILED' && !(cam && state.busy.get(cam.camera_id) === 'starting')) {
      // (A start that failed is already reported to whoever pressed Record.)
      toast(`Recording on ${label} failed${reason ? `: ${reason}` : ''}.`, 'error');
    }
    loadFiles('recordings');
    loadStorage();
  }

  // A recording that was running before this page opened: its time comes from the segment being written.
  async function findRecordingStart(cameraId) {
    if (!has('list_recordings') || !has('get_recording_info')) return;
    try {
      const list = await call('list_recordings', { device: cameraId, limit: 1 });
      const file = list.files && list.files[0];
      if (!file) return;
      const info = await call('get_recording_info', { filename: file.filename });
      const started = toDate(info.created_time);
      const cam = state.cameras.get(cameraId);
      if (info.recording && started && cam && cam.recording && !state.recStart.get(cameraId)) {
        state.recStart.set(cameraId, started.getTime());
        renderCamera(cameraId);
      }
    } catch (err) {
      quiet(err, `recording start of ${cameraId}`);
    }
  }

  function systemUpdate(p) {
    const text = describeSystem(p);
    if (text) toast(text.message, text.kind);
    loadStatus();
    loadStorage();
    loadStreams();
  }

  // system_status_update: {component, status, message} (docs/api.md).
  function describeSystem(p) {
    if (!p || typeof p !== 'object') return null;
    const component = String(p.component || '');
    const status = String(p.status || '').toLowerCase();
    const detail = p.message ? ` (${p.message})` : '';
    const good = /^(up|ok|ready|available|normal|healthy)$/.test(status);
    if (component === 'mediamtx') {
      return good
        ? { message: 'The media server (MediaMTX) is back: streams and recording work again.', kind: 'ok' }
        : { message: 'The media server (MediaMTX) is not answering, so streams and recording are unavailable until it is back. The System panel shows why.', kind: 'error' };
    }
    if (component === 'storage') {
      return good
        ? { message: 'Disk space is fine again.', kind: 'ok' }
        : { message: `Disk space is ${status === 'critical' ? 'critically low: new recordings and snapshots are refused' : 'running low'}${detail}. Delete old recordings or snapshots.`, kind: status === 'critical' ? 'error' : 'warn' };
    }
    if (!component && !p.message) return null;
    return { message: `${component ? `${titleCase(component)}: ` : ''}${status || ''}${detail}`.trim(), kind: good ? 'ok' : 'warn' };
  }

  // -- actions ---------------------------------------------------------------------------

  function setBusy(cameraId, what) {
    if (what) state.busy.set(cameraId, what); else state.busy.delete(cameraId);
    renderCamera(cameraId);
  }

  async function takeSnapshot(cameraId) {
    const cam = state.cameras.get(cameraId);
    setBusy(cameraId, 'snapshot');
    try {
      const result = await call('take_snapshot', { device: cameraId }, SLOW_CALL_TIMEOUT_MS);
      const url = safeUrl(result.download_url) || `/files/snapshots/${encodeURIComponent(result.filename)}`;
      state.previews.set(cameraId, { url, time: result.timestamp || Date.now() / 1000 });
      showSnapshot(result, url, cam);
      loadFiles('snapshots');
      loadStorage();
    } catch (err) {
      toast(plain(err, `take a snapshot of ${cam ? cam.name || cameraId : cameraId}`), 'error');
    } finally {
      setBusy(cameraId, null);
    }
  }

  function showSnapshot(result, url, cam) {
    const dialog = $('snapshot-dialog');
    const img = $('snapshot-image');
    const label = cam ? cam.name || cam.camera_id : result.device;
    $('snapshot-title').textContent = `Snapshot · ${label}`;
    img.alt = `Snapshot from ${label}`;
    img.src = url;
    const bits = [result.filename, humanSize(result.file_size), humanTime(result.timestamp)].filter(Boolean);
    $('snapshot-caption').textContent = bits.join(' · ');
    const link = $('snapshot-download');
    link.href = url;
    link.setAttribute('download', result.filename || 'snapshot.jpg');
    if (!dialog.open) dialog.showModal();
    $('snapshot-done').focus();
  }

  async function toggleRecording(cameraId) {
    const cam = state.cameras.get(cameraId);
    const label = cam ? cam.name || cameraId : cameraId;
    const recording = cam && cam.recording;
    setBusy(cameraId, recording ? 'stopping' : 'starting');
    try {
      if (recording) {
        const result = await call('stop_recording', { device: cameraId }, SLOW_CALL_TIMEOUT_MS);
        if (cam) cam.recording = false;
        state.recStart.delete(cameraId);
        toast(`Saved ${result.filename || 'the recording'}${typeof result.duration === 'number' ? ` (${humanDuration(result.duration)})` : ''}.`, 'ok');
        loadFiles('recordings');
        loadStorage();
      } else {
        const result = await call('start_recording', { device: cameraId }, SLOW_CALL_TIMEOUT_MS);
        if (cam) cam.recording = true;
        setTimeout(loadStreams, 1200);
        const started = toDate(result.start_time);
        state.recStart.set(cameraId, started && Math.abs(Date.now() - started.getTime()) < 60000 ? started.getTime() : Date.now());
      }
    } catch (err) {
      toast(plain(err, recording ? `stop recording ${label}` : `start recording ${label}`), 'error');
      if (err instanceof RpcError && err.code === -32005) loadDetails(cameraId);
    } finally {
      setBusy(cameraId, null);
    }
  }

  async function copyText(text, button) {
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch (e) { ok = false; }
    if (!ok) {
      const input = button.parentElement.querySelector('input');
      input.focus();
      input.select();
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    }
    const label = button.textContent;
    button.textContent = ok ? 'Copied' : 'Press Ctrl+C';
    setTimeout(() => { button.textContent = label; }, 1600);
  }

  async function downloadFile(kind, file, event) {
    // Signed links expire: fetch a fresh one if the list is old.
    const method = kind === 'recordings' ? 'get_recording_info' : 'get_snapshot_info';
    const age = Date.now() - (state.files[kind] && state.files[kind].fetchedAt || 0);
    if (age < 30000 || !has(method)) return;
    event.preventDefault();
    try {
      const info = await call(method, { filename: file.filename });
      const a = h('a', { href: safeUrl(info.download_url) || safeUrl(file.download_url) || `/files/${kind}/${encodeURIComponent(file.filename)}`, download: file.filename });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (err) {
      toast(plain(err, `download ${file.filename}`), 'error');
      if (err instanceof RpcError && err.code === -32009) loadFiles(kind);
    }
  }

  async function deleteFile(kind, file, button) {
    // Two presses: the first arms the button for a few seconds.
    if (!button.classList.contains('confirming')) {
      const icon = button.firstChild;
      button.classList.add('confirming');
      button.replaceChildren('Delete?');
      button.setAttribute('aria-label', `Press again to delete ${file.filename}`);
      setTimeout(() => {
        if (button.isConnected && button.classList.contains('confirming')) {
          button.classList.remove('confirming');
          button.replaceChildren(icon);
          button.setAttribute('aria-label', `Delete ${file.filename}`);
        }
      }, 4000);
      return;
    }
    button.disabled = true;
    const method = kind === 'recordings' ? 'delete_recording' : 'delete_snapshot';
    try {
      await call(method, { filename: file.filename });
      toast(`Deleted ${file.filename}.`, 'ok');
    } catch (err) {
      toast(plain(err, `delete ${file.filename}`), 'error');
    }
    loadFiles(kind);
    loadStorage();
  }

  // -- rendering: header and connection ----------------------------------------------------

  function setConnection(mode, detail) {
    const pill = $('conn-pill');
    const banner = $('conn-banner');
    pill.className = 'pill';
    if (mode === 'connected') {
      pill.classList.add('ok');
      pill.textContent = 'Live';
      pill.title = `Connected to ${wsUrl()}`;
      banner.hidden = true;
    } else if (mode === 'connecting') {
      pill.textContent = 'Connecting…';
    } else if (mode === 'signin') {
      pill.classList.add('warn');
      pill.textContent = 'Sign-in needed';
      banner.hidden = true;
    } else {
      pill.classList.add('bad');
      pill.textContent = 'Offline';
      banner.hidden = false;
      updateBanner(detail);
      for (const id of state.cameras.keys()) renderCamera(id);
    }
    document.body.dataset.connection = mode;
  }

  function updateBanner(reason) {
    if (reason !== undefined) state.bannerReason = reason;
    const left = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
    const why = state.bannerReason ? `${state.bannerReason} ` : '';
    $('conn-banner-text').textContent = left > 0
      ? `${why}Reconnecting in ${left} s…`
      : `${why}Reconnecting…`;
  }

  function renderServer() {
    const info = state.info || {};
    $('server-host').textContent = location.host;
    $('server-version').textContent = info.version ? `camsvc ${info.version} · API ${info.api_version || '?'}` : '';
  }

  function renderHealth() {
    const status = state.status;
    const pill = $('health-pill');
    const list = $('checks');
    list.replaceChildren();
    if (!status) { pill.hidden = true; return; }
    pill.hidden = false;
    const overall = status.status || 'unknown';
    pill.className = `pill ${overall === 'healthy' ? 'ok' : overall === 'starting' ? 'warn' : 'bad'}`;
    pill.textContent = overall === 'healthy' ? 'Healthy' : titleCase(overall);
    pill.title = 'Overall health (get_status)';

    list.append(h('li', {},
      h('span', {}, 'Service', h('span', { class: 'muted small' }, status.uptime !== undefined ? ` · up ${humanUptime(status.uptime)}` : '')),
      h('span', { class: pill.className }, pill.textContent)));
    const checks = status.checks || {};
    const names = Object.keys(checks).sort((a, b) => (a === 'mediamtx' ? -1 : b === 'mediamtx' ? 1 : a.localeCompare(b)));
    for (const name of names) {
      const check = checks[name] || {};
      const label = name === 'mediamtx' ? 'MediaMTX' : titleCase(name);
      list.append(h('li', { dataset: { check: name } },
        h('span', {}, label),
        h('span', { class: `pill ${check.ok ? 'ok' : 'bad'}` }, check.ok ? 'OK' : 'Failing'),
        !check.ok && check.reason ? h('span', { class: 'reason' }, check.reason) : null));
    }
    const components = status.components || {};
    const mediamtx = components.mediamtx;
    if (mediamtx && typeof mediamtx === 'object' && !checks.mediamtx) {
      const ok = mediamtx.available ?? mediamtx.ok ?? (mediamtx.status ? /up|ok|ready|available/i.test(mediamtx.status) : undefined);
      if (ok !== undefined) {
        list.append(h('li', { dataset: { check: 'mediamtx' } }, h('span', {}, 'MediaMTX'),
          h('span', { class: `pill ${ok ? 'ok' : 'bad'}` }, ok ? 'OK' : 'Down')));
      }
    }
  }

  function renderStorage() {
    const s = state.storage;
    const box = $('storage');
    if (!s) { box.hidden = true; return; }
    box.hidden = false;
    const total = pick(s, ['total_space', 'total_bytes', 'total', 'disk_total']);
    const free = pick(s, ['free_bytes', 'available_bytes', 'available_space', 'free_space', 'available', 'free', 'disk_free']);
    let used = pick(s, ['used_space', 'used_bytes', 'used', 'disk_used']);
    if (used === undefined && total !== undefined && free !== undefined) used = total - free;
    let percent = pick(s, ['usage_percent', 'used_percent', 'percent_used']);
    const freePercent = pick(s, ['free_percent']);
    if (percent === undefined && freePercent !== undefined) percent = 100 - freePercent;
    if (percent === undefined && total) percent = (100 * (used ?? total - free)) / total;
    const fill = $('storage-fill');
    const meter = $('storage-meter');
    if (percent !== undefined) {
      const pct = Math.max(0, Math.min(100, percent));
      fill.style.width = `${pct}%`;
      fill.className = `meter-fill${pct >= 98 ? ' bad' : pct >= 90 ? ' warn' : ''}`;
      meter.setAttribute('aria-valuenow', pct.toFixed(0));
      meter.setAttribute('aria-valuetext', `${pct.toFixed(0)}% of the disk used`);
    }
    $('storage-text').textContent = free !== undefined
      ? `${humanSize(free)} free${total !== undefined ? ` of ${humanSize(total)}` : ''}`
      : '';
    const facts = $('storage-facts');
    facts.replaceChildren();
    for (const [kind, label] of [['recordings', 'Recordings'], ['snapshots', 'Snapshots']]) {
      const part = s[kind] && typeof s[kind] === 'object' ? s[kind] : {};
      const size = pick(part, ['bytes', 'size']) ?? pick(s, [`${kind}_size`, `${kind}_bytes`]);
      const count = pick(part, ['files', 'count']) ?? pick(s, [`${kind}_count`]);
      if (size === undefined && count === undefined) continue;
      const parts = [count !== undefined ? `${count} file${count === 1 ? '' : 's'}` : null, size !== undefined ? humanSize(size) : null];
      facts.append(h('dt', {}, label), h('dd', { dataset: { storage: kind } }, parts.filter(Boolean).join(' · ')));
    }
    const level = String(s.status || s.level || '').toLowerCase();
    if (level && !/^(ok|normal)$/.test(level)) {
      facts.append(h('dt', {}, 'State'), h('dd', { class: level === 'critical' ? 'bad-text' : 'warn-text' },
        level === 'critical' ? 'Critically low: new files are refused' : 'Running low'));
      fill.classList.add(level === 'critical' ? 'bad' : 'warn');
    }
  }

  // -- rendering: cameras ---------------------------------------------------------------------

  function renderCameras() {
    const grid = $('camera-grid');
    const notice = $('cameras-notice');
    const cams = [...state.cameras.values()].sort((a, b) => cameraOrder(a) - cameraOrder(b));
    const connected = cams.filter((c) => c.status !== 'DISCONNECTED').length;
    $('camera-count').textContent = cams.length ? `${connected} connected · ${cams.length} known` : '';
    if (state.cameraListError) {
      notice.hidden = false;
      notice.textContent = state.cameraListError;
    } else if (!cams.length && state.ready) {
      notice.hidden = false;
      notice.textContent = 'No cameras yet. Plug in a USB camera: it appears here on its own, no reload needed.';
    } else {
      notice.hidden = true;
    }
    const keep = new Set(cams.map((c) => c.camera_id));
    for (const card of [...grid.children]) if (!keep.has(card.dataset.camera)) card.remove();
    cams.forEach((cam, index) => {
      const existing = grid.querySelector(`[data-camera="${CSS.escape(cam.camera_id)}"]`);
      const card = cameraCard(cam);
      if (existing) swap(existing, card);
      const at = grid.children[index];
      if (at !== card) grid.insertBefore(card, at || null);
    });
  }

  function cameraOrder(cam) {
    const m = /^camera(\d+)$/.exec(cam.camera_id || '');
    return m ? Number(m[1]) : 1e9;
  }

  function renderCamera(cameraId) {
    const cam = state.cameras.get(cameraId);
    const grid = $('camera-grid');
    const existing = grid.querySelector(`[data-camera="${CSS.escape(cameraId)}"]`);
    if (!cam || !existing) return;
    swap(existing, cameraCard(cam));
  }

  function swap(oldEl, newEl) {
    // Keep focus (and an open capabilities list) across re-renders.
    const active = document.activeElement;
    const focusKey = active && oldEl.contains(active) ? active.dataset.focusKey : null;
    const caps = oldEl.querySelector('details.caps');
    const newCaps = newEl.querySelector('details.caps');
    if (caps && newCaps && caps.open) newCaps.open = true;
    oldEl.replaceWith(newEl);
    if (focusKey) {
      const target = newEl.querySelector(`[data-focus-key="${focusKey}"]`);
      if (target) target.focus();
    }
  }

  function streamInfo(cam) {
    if (cam.status === 'DISCONNECTED') return { cls: '', text: 'Camera unplugged' };
    if (!has('get_streams')) return null;
    if (!state.streamsKnown) {
      if (state.streamsError instanceof RpcError && state.streamsError.code === -32006) {
        return { cls: 'bad', text: 'MediaMTX unavailable' };
      }
      return { cls: '', text: 'Unknown' };
    }
    const s = state.streams.get(cam.camera_id);
    if (!s) return { cls: 'warn', text: 'Not configured in MediaMTX' };
    const ready = s.ready ?? (typeof s.state === 'string' ? /ready|live|publishing/i.test(s.state) : undefined)
      ?? (typeof s.status === 'string' ? /ready|live|publishing/i.test(s.status) : false);
    const readers = Array.isArray(s.readers) ? s.readers.length : typeof s.readers === 'number' ? s.readers : pick(s, ['reader_count', 'readers_count']);
    if (ready) {
      return { cls: 'ok', text: `Live${readers ? ` · ${readers} viewer${readers === 1 ? '' : 's'}` : ''}` };
    }
    return { cls: '', text: 'Idle · starts on demand' };
  }

  function capabilityRows(caps) {
    const rows = [];
    for (const fmt of (caps && caps.formats) || []) {
      const sizes = fmt.sizes || [];
      const rates = (size) => (size.fps || []).map((r) => `${Math.round(r * 100) / 100}`).join(', ')
        || (size.fps_range ? `${size.fps_range.min}–${size.fps_range.max}` : '–');
      if (!sizes.length) rows.push([fmt.format, fmt.description || '', '–', '–']);
      for (const size of sizes) rows.push([fmt.format, fmt.description || '', `${size.width}×${size.height}`, rates(size)]);
    }
    return rows;
  }

  function cameraCard(cam) {
    const id = cam.camera_id;
    const detail = state.details.get(id) || {};
    const caps = detail.capabilities || cam.capabilities || null;
    const offline = cam.status === 'DISCONNECTED';
    const errored = cam.status === 'ERROR';
    const label = cam.name || id;
    const busy = state.busy.get(id);
    const online = state.conn && state.conn.isOpen && state.ready;
    const operate = canOperate();
    const recording = !!cam.recording && !offline;

    // Preview: the last snapshot taken from this page.
    const preview = state.previews.get(id);
    const badges = h('div', { class: 'preview-badges' },
      recording ? h('span', { class: 'live-badge rec', dataset: { role: 'rec-badge' } }, 'Rec ', h('span', { class: 'timer', dataset: { timer: id } }, recTimerText(id))) : h('span'),
      cam.resolution ? h('span', { class: 'live-badge' }, `${cam.resolution}${cam.fps ? ` · ${cam.fps} fps` : ''}`) : null);
    const previewBox = h('div', { class: `preview${preview ? '' : ' empty'}` },
      preview
        ? h('img', { src: preview.url, alt: `Latest snapshot from ${label}`, loading: 'lazy' })
        : h('div', { class: 'preview-empty' }, svg(ICON_CAMERA), offline ? 'Unplugged' : 'Take a snapshot to see the picture'),
      badges,
      preview ? h('span', { class: 'preview-time' }, `Snapshot ${humanTime(preview.time)}`) : null);

    const statusText = offline ? 'Disconnected' : errored ? 'Error' : 'Connected';
    const head = h('div', { class: 'camera-head' },
      h('div', { class: 'camera-title' },
        h('h3', { id: `title-${id}` }, label),
        h('p', { class: 'camera-sub' }, h('code', {}, id), ' · ', h('code', {}, cam.device || '–'))),
      h('span', { class: `status ${offline ? 'disconnected' : errored ? 'error' : 'connected'}`, dataset: { role: 'status' } }, statusText));

    const facts = h('dl', { class: 'facts' });
    const addFact = (name, ...value) => facts.append(h('dt', {}, name), h('dd', {}, ...value));
    addFact('Mode', cam.resolution ? `${cam.resolution.replace('x', '×')} at ${cam.fps || '?'} fps` : '–');
    const stream = streamInfo(cam);
    if (stream) addFact('Stream', h('span', { class: `dot ${stream.cls}` }), h('span', { dataset: { role: 'stream' } }, stream.text));
    if (errored && (cam.error || detail.error)) addFact('Problem', cam.error || detail.error);
    const formats = caps && caps.formats ? [...new Set(caps.formats.map((f) => f.format))] : [];
    if (formats.length) addFact('Formats', h('span', { class: 'chips' }, formats.map((f) => h('span', { class: 'chip' }, f))));

    const body = h('div', { class: 'camera-body' }, head, facts);
    const rows = capabilityRows(caps);
    if (rows.length) {
      body.append(h('details', { class: 'caps' },
        h('summary', {}, `Capabilities (${rows.length} mode${rows.length === 1 ? '' : 's'})`),
        h('div', { class: 'caps-scroll' },
          h('table', { class: 'caps-table' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Format'), h('th', { scope: 'col' }, 'Size'), h('th', { scope: 'col' }, 'Frame rates'))),
            h('tbody', {}, rows.map(([f, d, s, r]) => h('tr', {}, h('td', { title: d }, f), h('td', {}, s), h('td', {}, r))))))));
    }

    const streams = cam.streams || {};
    if (!offline && (streams.rtsp || streams.webrtc || streams.hls)) {
      const links = h('div', { class: 'links' });
      if (streams.rtsp) {
        const inputId = `rtsp-${id}`;
        links.append(h('div', { class: 'copy-row' },
          h('input', { id: inputId, type: 'text', readOnly: true, value: streams.rtsp, 'aria-label': `RTSP address of ${label}`, onfocus: (e) => e.target.select() }),
          h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Copy the RTSP address of ${label}`, dataset: { action: 'copy-rtsp', focusKey: 'copy' }, onclick: (e) => copyText(streams.rtsp, e.currentTarget) }, 'Copy')));
      }
      const players = h('div', { class: 'player-links' });
      if (safeUrl(streams.webrtc)) {
        players.append(h('a', { class: 'btn btn-small', href: streams.webrtc, target: '_blank', rel: 'noopener', 'aria-label': `Watch ${label} live (WebRTC, opens MediaMTX's player)`, 'aria-disabled': offline ? 'true' : null, dataset: { action: 'webrtc' } }, 'Watch · WebRTC ↗'));
      }
      if (safeUrl(streams.hls)) {
        const page = streams.hls.replace(/index\.m3u8$/, '');
        players.append(h('a', { class: 'btn btn-small', href: page, target: '_blank', rel: 'noopener', 'aria-label': `Watch ${label} with HLS (opens MediaMTX's player)`, 'aria-disabled': offline ? 'true' : null, dataset: { action: 'hls' } }, 'Watch · HLS ↗'));
      }
      if (players.children.length) links.append(players);
      body.append(links);
    }

    const actions = h('div', { class: 'camera-actions' });
    const why = !online ? 'Not connected' : offline ? 'The camera is unplugged'
      : errored ? 'The camera is not working (see Problem)' : !operate ? 'Needs the operator role' : null;
    if (has('take_snapshot')) {
      actions.append(h('button', {
        type: 'button', class: 'btn', disabled: !!why || !!busy,
        title: why || 'Take a picture now',
        'aria-label': `Take a snapshot of ${label}`,
        dataset: { action: 'snapshot', focusKey: 'snapshot' },
        onclick: () => takeSnapshot(id),
      }, busy === 'snapshot' ? h('span', { class: 'spinner', 'aria-hidden': 'true' }) : svg(ICON_IMAGE), busy === 'snapshot' ? 'Taking…' : 'Snapshot'));
    }
    if (has('get_camera_controls')) {
      const noControls = !online ? 'Not connected' : offline ? 'The camera is unplugged' : errored ? 'The camera is not working (see Problem)' : null;
      actions.append(h('button', {
        type: 'button', class: 'btn', disabled: !!noControls,
        title: noControls || 'Image controls and stream settings',
        'aria-label': `Controls of ${label}`,
        dataset: { action: 'controls', focusKey: 'controls' },
        onclick: () => openControls(id),
      }, 'Controls'));
    }
    if (has('start_recording')) {
      const stopping = recording || busy === 'stopping';
      const button = h('button', {
        type: 'button',
        class: `btn ${stopping ? 'btn-stop' : 'btn-rec'}`,
        disabled: !!why || !!busy,
        title: why || (stopping ? 'Stop recording' : 'Start recording'),
        'aria-label': `${stopping ? 'Stop recording' : 'Start recording'} ${label}`,
        'aria-pressed': stopping ? 'true' : 'false',
        dataset: { action: 'record', focusKey: 'record' },
        onclick: () => toggleRecording(id),
      });
      if (busy === 'starting' || busy === 'stopping') {
        button.append(h('span', { class: 'spinner', 'aria-hidden': 'true' }), busy === 'starting' ? 'Starting…' : 'Stopping…');
      } else if (recording) {
        button.append(h('span', { class: 'stop-square', 'aria-hidden': 'true' }), 'Stop ', h('span', { class: 'timer', dataset: { timer: id } }, recTimerText(id)));
      } else {
        button.append(h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), 'Record');
      }
      actions.append(button);
    }

    return h('article', {
      class: `camera${offline ? ' offline' : ''}${recording ? ' recording' : ''}`,
      'aria-labelledby': `title-${id}`,
      dataset: { camera: id, status: cam.status || '' },
    }, previewBox, body, actions.children.length ? actions : null);
  }

  // -- camera controls and stream settings (dialog) ------------------------------------

  const LOCKED_FLAGS = ['read_only', 'inactive', 'grabbed', 'disabled'];
  const controlsState = { cameraId: null, controls: new Map(), stream: null };

  function controlLocked(c) {
    return !canOperate() || (c.flags || []).some((f) => LOCKED_FLAGS.includes(f));
  }

  function controlTitle(c) {
    const why = (c.flags || []).filter((f) => LOCKED_FLAGS.includes(f));
    if (!canOperate()) return 'Needs the operator role';
    if (why.includes('inactive')) return 'Inactive: its automatic mode is on';
    if (why.includes('grabbed')) return 'Locked by the driver while streaming';
    if (why.length) return why.join(', ').replace('_', '-');
    return c.label || c.name;
  }

  async function setControl(name, value) {
    const cameraId = controlsState.cameraId;
    try {
      const result = await call('set_camera_controls', { device: cameraId, controls: { [name]: value } });
      for (const [n, v] of Object.entries(result.controls || {})) {
        const c = controlsState.controls.get(n);
        if (c && v !== null) { c.value = v; c.stored = v; updateControl(c); }
      }
    } catch (err) {
      toast(plain(err, `set ${name}`), 'error');
      reloadControls();
    }
  }

  function controlWidget(c) {
    const id = `ctl-${c.name}`;
    const locked = controlLocked(c);
    const common = { id, disabled: locked, title: controlTitle(c), dataset: { role: 'control-input', control: c.name } };
    if (c.type === 'boolean') {
      return h('input', { ...common, type: 'checkbox', checked: !!c.value, onchange: (e) => setControl(c.name, e.target.checked) });
    }
    if (c.type === 'menu' || c.type === 'integer_menu') {
      const select = h('select', { ...common, onchange: (e) => setControl(c.name, Number(e.target.value)) },
        (c.menu || []).map((m) => h('option', { value: String(m.index) }, m.name !== undefined ? m.name : String(m.value))));
      select.value = String(c.value);
      return select;
    }
    if (c.type === 'button') {
      return h('button', { ...common, type: 'button', class: 'btn btn-small', onclick: () => setControl(c.name, true) }, c.label || c.name);
    }
    if (c.type === 'integer' && c.maximum - c.minimum <= 100000) {
      const out = h('output', { for: id, dataset: { role: 'control-value', control: c.name } }, String(c.value));
      const range = h('input', {
        ...common, type: 'range', min: String(c.minimum), max: String(c.maximum), step: String(c.step || 1), value: String(c.value),
        oninput: (e) => { out.textContent = e.target.value; },
        onchange: (e) => setControl(c.name, Number(e.target.value)),
      });
      range._output = out;
      return range;
    }
    // int64, bitmask and very wide integers: a number field
    return h('input', {
      ...common, type: 'text', inputmode: 'numeric', value: c.type === 'bitmask' ? `0x${Number(c.value).toString(16)}` : String(c.value),
      onchange: (e) => {
        const text = e.target.value.trim();
        const n = /^0x/i.test(text) ? parseInt(text, 16) : Number(text);
        if (Number.isFinite(n)) setControl(c.name, n); else toast(`${c.name}: not a number`, 'error');
      },
    });
  }

  function controlRow(c) {
    const widget = controlWidget(c);
    const flags = (c.flags || []).filter((f) => LOCKED_FLAGS.includes(f));
    const stored = c.stored !== null && c.stored !== undefined;
    const row = h('div', { class: `control-row${controlLocked(c) ? ' disabled' : ''}`, dataset: { control: c.name, type: c.type } },
      h('label', { for: widget.id }, c.label || c.name,
        flags.length ? h('span', { class: 'control-flag', dataset: { role: 'control-flags' } }, `(${flags.join(', ').replace(/_/g, '-')})`) : null,
        stored ? h('span', { class: 'control-flag', title: 'Kept for this camera', dataset: { role: 'control-stored' } }, '★') : null),
      c.type === 'button' ? h('span') : widget,
      c.type === 'button' ? widget : (widget._output || h('span')));
    return row;
  }

  function updateControl(c) {
    const row = document.querySelector(`#controls-body [data-control="${CSS.escape(c.name)}"].control-row`);
    if (!row) return;
    const input = row.querySelector('[data-role="control-input"]');
    if (input && document.activeElement === input && input.type === 'range') return; // the user is dragging it
    const fresh = controlRow(c);
    row.replaceWith(fresh);
  }

  function renderControls(result) {
    const body = $('controls-body');
    body.replaceChildren();
    controlsState.controls.clear();
    for (const group of result.classes || []) {
      const rows = [];
      for (const c of group.controls || []) {
        controlsState.controls.set(c.name, c);
        if (c.supported) rows.push(controlRow(c));
      }
      if (rows.length) body.append(h('fieldset', { class: 'controls-group', dataset: { class: group.class } }, h('legend', {}, group.class.replace(/_/g, ' ')), ...rows));
    }
    if (!body.children.length) body.append(h('p', { class: 'muted' }, 'This camera has no adjustable controls.'));
  }

  function streamField(label, control) {
    return h('label', {}, label, control);
  }

  function renderStream(result) {
    controlsState.stream = result;
    const form = $('stream-form');
    form.replaceChildren();
    const active = result.active;
    const formats = result.formats || [];
    if (!active || !formats.length) {
      form.append(h('p', { class: 'muted stream-active' }, 'The camera\'s modes are not known yet.'));
      return;
    }
    const locked = !canOperate();
    const fmt = h('select', { name: 'format', disabled: locked, dataset: { role: 'stream-format' } }, formats.map((f) => h('option', { value: f.format }, f.format)));
    fmt.value = active.format;
    const size = h('select', { name: 'size', disabled: locked, dataset: { role: 'stream-size' } });
    const fps = h('select', { name: 'fps', disabled: locked, dataset: { role: 'stream-fps' } });
    const fillSizes = () => {
      const f = formats.find((x) => x.format === fmt.value) || formats[0];
      size.replaceChildren(...f.sizes.map((s) => h('option', { value: `${s.width}x${s.height}` }, `${s.width}×${s.height}`)));
      const want = `${active.width}x${active.height}`;
      if ([...size.options].some((o) => o.value === want)) size.value = want;
      fillRates();
    };
    const fillRates = () => {
      const f = formats.find((x) => x.format === fmt.value) || formats[0];
      const s = f.sizes.find((x) => `${x.width}x${x.height}` === size.value) || f.sizes[0];
      const rates = (s && s.fps) || [];
      fps.replaceChildren(...rates.map((r) => h('option', { value: String(r) }, `${r} fps`)));
      if (rates.map(String).includes(String(active.fps))) fps.value = String(active.fps);
    };
    fmt.addEventListener('change', fillSizes);
    size.addEventListener('change', fillRates);
    fillSizes();
    const encoder = h('select', { name: 'encoder', disabled: locked, dataset: { role: 'stream-encoder' } },
      (result.encoders || []).map((e) => h('option', { value: e.name, title: e.description }, e.name)));
    encoder.value = active.encoder;
    const bitrate = h('input', { name: 'bitrate', type: 'number', min: '64', max: '100000', placeholder: 'default', disabled: locked, value: active.bitrate ? String(active.bitrate) : '' });
    const gop = h('input', { name: 'gop', type: 'number', min: '1', max: '600', placeholder: '1 s', disabled: locked, value: active.gop ? String(active.gop) : '' });
    const apply = h('button', { type: 'submit', class: 'btn btn-primary', disabled: locked, dataset: { action: 'apply-stream' } }, 'Apply');
    const reset = h('button', { type: 'button', class: 'btn', disabled: locked, dataset: { action: 'default-stream' }, onclick: () => applyStream({ format: null, width: null, height: null, fps: null, encoder: null, bitrate: null, gop: null }) }, 'Default');
    form.append(
      h('p', { class: 'muted small stream-active', dataset: { role: 'stream-active' } },
        `Streaming ${active.format} ${active.width}×${active.height} at ${active.fps || '?'} fps, encoder ${active.encoder}${active.custom ? ' (kept for this camera)' : ' (default)'}`),
      streamField('Format', fmt), streamField('Size', size), streamField('Frame rate', fps), streamField('Encoder', encoder),
      streamField('Bitrate (kbit/s)', bitrate), streamField('Keyframe every (frames)', gop), apply, reset);
    form.onsubmit = (e) => {
      e.preventDefault();
      const [w, hgt] = size.value.split('x').map(Number);
      applyStream({
        format: fmt.value, width: w, height: hgt, fps: fps.value ? Number(fps.value) : null, encoder: encoder.value,
        bitrate: bitrate.value ? Number(bitrate.value) : null, gop: gop.value ? Number(gop.value) : null,
      });
    };
  }

  async function applyStream(settings) {
    const cameraId = controlsState.cameraId;
    try {
      const result = await call('set_stream_settings', { device: cameraId, ...settings });
      toast(result.changed ? 'Stream settings applied: the stream restarts' : 'Stream settings unchanged', 'ok');
      renderStream({ ...controlsState.stream, active: result.active, stored: result.stored });
    } catch (err) {
      toast(plain(err, 'change the stream settings'), 'error');
    }
  }

  async function reloadControls() {
    const cameraId = controlsState.cameraId;
    if (!cameraId) return;
    try {
      renderControls(await call('get_camera_controls', { device: cameraId }));
    } catch (err) {
      $('controls-body').replaceChildren(h('p', { class: 'muted' }, plain(err, 'read the controls')));
    }
  }

  async function openControls(cameraId) {
    const cam = state.cameras.get(cameraId);
    controlsState.cameraId = cameraId;
    $('controls-title').textContent = `Controls · ${cam ? cam.name || cameraId : cameraId}`;
    $('controls-body').replaceChildren(h('p', { class: 'muted' }, 'Reading the camera\'s controls…'));
    $('stream-form').replaceChildren();
    $('controls-reset').disabled = !canOperate();
    const dialog = $('controls-dialog');
    if (!dialog.open) dialog.showModal();
    await reloadControls();
    if (has('get_stream_settings')) {
      try {
        renderStream(await call('get_stream_settings', { device: cameraId }));
      } catch (err) {
        $('stream-form').replaceChildren(h('p', { class: 'muted stream-active' }, plain(err, 'read the stream settings')));
      }
    }
  }

  async function resetControls() {
    try {
      await call('reset_camera_controls', { device: controlsState.cameraId });
      toast('Controls back to their defaults', 'ok');
    } catch (err) {
      toast(plain(err, 'reset the controls'), 'error');
    }
    reloadControls();
  }

  // camera_controls_update: {device, camera_id, controls: [control, ...]} (changed ones).
  function controlsUpdate(p) {
    if (!p || p.camera_id !== controlsState.cameraId || !$('controls-dialog').open) return;
    for (const c of p.controls || []) {
      controlsState.controls.set(c.name, c);
      if (c.supported) updateControl(c);
    }
  }

  function recTimerText(cameraId) {
    const started = state.recStart.get(cameraId);
    if (!started) return '';
    return clock((Date.now() - started) / 1000);
  }

  function tick() {
    for (const el of document.querySelectorAll('[data-timer]')) {
      el.textContent = recTimerText(el.dataset.timer);
    }
    if (!$('conn-banner').hidden) updateBanner();
  }

  // -- rendering: files -------------------------------------------------------------------

  function renderFiles(kind) {
    const list = $(`files-${kind}`);
    const count = $(`count-${kind}`);
    const more = $(`more-${kind}`);
    const result = state.files[kind];
    list.replaceChildren();
    if (!has(`list_${kind}`)) {
      count.textContent = '';
      more.hidden = true;
      list.append(h('li', { class: 'file-empty' }, `This server does not list ${kind}.`));
      return;
    }
    if (!result) {
      count.textContent = '';
      more.hidden = true;
      list.append(h('li', { class: 'file-empty' }, 'Loading…'));
      return;
    }
    if (!result.fetchedAt) result.fetchedAt = Date.now();
    const files = result.files || [];
    const total = typeof result.total === 'number' ? result.total : files.length;
    count.textContent = String(total);
    more.hidden = total <= files.length;
    if (!files.length) {
      list.append(h('li', { class: 'file-empty' }, kind === 'recordings'
        ? 'No recordings yet. Press Record on a camera to make one.'
        : 'No snapshots yet. Press Snapshot on a camera to take one.'));
    }
    const seen = state.seenFiles[kind];
    const first = seen.size === 0;
    for (const file of files) {
      const name = file.filename;
      const url = safeUrl(file.download_url) || `/files/${kind}/${encodeURIComponent(name)}`;
      const thumb = kind === 'snapshots'
        ? h('img', { class: 'file-thumb', src: url, alt: '', loading: 'lazy' })
        : h('span', { class: 'file-thumb' }, svg(ICON_FILM));
      const meta = [humanSize(file.file_size), humanTime(file.modified_time), kind === 'recordings' ? humanDuration(file.duration) : '']
        .filter(Boolean).join(' · ');
      const actions = h('div', { class: 'file-actions' },
        h('a', {
          class: 'btn btn-small btn-icon', href: url, download: name, title: 'Download',
          'aria-label': `Download ${name}`, dataset: { action: 'download' },
          onclick: (e) => downloadFile(kind, file, e),
        }, svg(ICON_DOWNLOAD)));
      if (has(kind === 'recordings' ? 'delete_recording' : 'delete_snapshot')) {
        actions.append(h('button', {
          type: 'button', class: 'btn btn-small btn-icon btn-danger', disabled: !canOperate(),
          title: canOperate() ? 'Delete' : 'Needs the operator role',
          'aria-label': `Delete ${name}`, dataset: { action: 'delete' },
          onclick: (e) => deleteFile(kind, file, e.currentTarget),
        }, svg(ICON_TRASH)));
      }
      const isNew = !first && !seen.has(name);
      seen.add(name);
      list.append(h('li', { class: `file${isNew ? ' new' : ''}`, dataset: { file: name } },
        thumb,
        h('div', { class: 'file-info' }, h('div', { class: 'file-name', title: name }, name), h('div', { class: 'file-meta' }, meta)),
        actions));
    }
  }

  function selectTab(kind) {
    for (const tab of document.querySelectorAll('[role="tab"]')) {
      const selected = tab.dataset.kind === kind;
      tab.setAttribute('aria-selected', selected ? 'true' : 'false');
      tab.tabIndex = selected ? 0 : -1;
      $(tab.getAttribute('aria-controls')).hidden = !selected;
    }
  }

  // -- toasts ---------------------------------------------------------------------------

  function toast(message, kind = 'info') {
    const box = $('toasts');
    const close = h('button', { type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': 'Dismiss' }, '✕');
    const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, h('div', {}, message), close);
    close.addEventListener('click', () => el.remove());
    box.append(el);
    while (box.children.length > 4) box.firstElementChild.remove();
    setTimeout(() => el.remove(), kind === 'error' ? 12000 : 5000);
  }

  // -- wiring ------------------------------------------------------------------------------

  function refresh() {
    if (document.hidden || !state.ready || !state.conn || !state.conn.isOpen) return;
    loadStreams();
    loadStatus();
    loadStorage();
  }

  function init() {
    $('login-form').addEventListener('submit', submitLogin);
    $('login-dialog').addEventListener('cancel', (e) => e.preventDefault());
    $('sign-out').addEventListener('click', () => {
      forgetToken();
      if (state.conn) state.conn.close();
      location.reload();
    });
    $('retry-now').addEventListener('click', () => { state.attempt = 0; connect(); });
    const closeControls = () => { $('controls-dialog').close(); controlsState.cameraId = null; };
    $('controls-close').addEventListener('click', closeControls);
    $('controls-done').addEventListener('click', closeControls);
    $('controls-reset').addEventListener('click', resetControls);
    $('controls-dialog').addEventListener('close', () => { controlsState.cameraId = null; });
    const closeSnapshot = () => $('snapshot-dialog').close();
    $('snapshot-close').addEventListener('click', closeSnapshot);
    $('snapshot-done').addEventListener('click', closeSnapshot);
    $('snapshot-dialog').addEventListener('click', (e) => { if (e.target === e.currentTarget) closeSnapshot(); });
    $('refresh-files').addEventListener('click', () => { loadFiles('recordings'); loadFiles('snapshots'); loadStorage(); });
    for (const kind of ['recordings', 'snapshots']) {
      $(`more-${kind}`).addEventListener('click', () => { state.limits[kind] += PAGE_SIZE; loadFiles(kind); });
    }
    const tabs = [...document.querySelectorAll('[role="tab"]')];
    for (const tab of tabs) {
      tab.addEventListener('click', () => selectTab(tab.dataset.kind));
      tab.addEventListener('keydown', (e) => {
        if (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft') return;
        const next = tabs[(tabs.indexOf(tab) + (e.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
        selectTab(next.dataset.kind);
        next.focus();
      });
    }
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
    setInterval(tick, 1000);
    setInterval(refresh, REFRESH_MS);
    setInterval(() => {
      if (!document.hidden && state.ready) { loadFiles('recordings'); loadFiles('snapshots'); }
    }, FILES_REFRESH_MS);
    renderServer();
    connect();
  }

  init();
})();

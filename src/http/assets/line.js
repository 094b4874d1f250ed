// The line view: one tile per bench, drawn from the station's /events stream (server-sent events). Everything a
// device sent (serials, codes, messages) is set as text, never as markup.
'use strict';

(() => {
  const STATE_TEXT = {
    starting: 'STARTING',
    idle: 'IDLE',
    busy: 'PROVISIONING',
    'port-down': 'PORT DOWN',
    stopped: 'STOPPED',
  };
  // The view is re-sent at least every 5 s; a longer silence means the stream is gone.
  const STALE_MS = 15000;
  const tiles = new Map();
  let view = null;
  let receivedAt = 0;
  let linkUp = false;

  const byId = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Now on the station's clock: its time when the view was sent, plus what passed here since.
  function stationNow() {
    return view.now_unix_ms + (Date.now() - receivedAt);
  }

  function ago(atMs) {
    const s = Math.max(0, Math.round((stationNow() - atMs) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min ago';
  }

  function pill(id, level, text) {
    const p = byId(id);
    p.dataset.level = level;
    p.textContent = text;
  }

  function makeTile(name) {
    const t = { root: el('article', 'tile') };
    t.root.dataset.bench = name;
    const head = el('div', 'head');
    head.append(el('h2', 'name', name), (t.state = el('span', 'state')));
    const counts = el('div', 'counts');
    const count = (cls, label) => {
      const box = el('div');
      const b = el('b', cls);
      box.append(b, el('small', '', label));
      counts.append(box);
      return b;
    };
    t.ok = count('ok-count', 'OK');
    t.failed = count('fail-count', 'Failed');
    t.rate = count('rate', 'Per hour');
    const last = el('div', 'last');
    last.append(el('small', '', 'Last device'), (t.serial = el('div', 'serial')), (t.outcome = el('div', 'outcome')));
    t.recent = el('ol', 'recent');
    last.append(t.recent);
    t.error = el('div', 'error');
    t.errorWhen = el('small');
    t.code = el('div', 'code');
    t.meaning = el('div', 'meaning');
    t.todo = el('div', 'todo');
    t.who = el('div', 'who');
    t.error.append(t.errorWhen, t.code, t.meaning, t.todo, t.who);
    t.port = el('div', 'port');
    t.root.append(head, counts, last, t.port, t.error);
    byId('tiles').append(t.root);
    return t;
  }

  function alertOf(b) {
    if (!b.thread_alive && b.state !== 'stopped') return 'error';
    if (b.state === 'port-down' || b.state === 'stopped') return 'error';
    if (b.last && !b.last.ok) return 'error';
    if (b.state === 'busy') return 'busy';
    return b.last ? 'ok' : 'idle';
  }

  function renderTile(t, b) {
    t.root.dataset.state = b.state;
    t.root.dataset.alert = alertOf(b);
    t.state.textContent = b.thread_alive || b.state === 'stopped' ? STATE_TEXT[b.state] || b.state : 'RESTARTING';
    t.ok.textContent = String(b.ok);
    t.failed.textContent = String(b.failed);
    t.failed.toggleAttribute('data-zero', b.failed === 0);
    t.rate.textContent = String(Math.round(b.per_hour));
    if (b.last) {
      t.serial.textContent = b.last.serial || '(no serial)';
      t.outcome.dataset.ok = String(b.last.ok);
      t.outcome.replaceChildren(
        el('span', 'verdict', b.last.ok ? 'OK' : 'FAILED'),
        document.createTextNode(
          ' ' + b.last.what + (b.last.ok ? ' · ' + b.last.millis + ' ms' : '') + ' · ' + ago(b.last.at_unix_ms),
        ),
      );
    } else {
      t.serial.textContent = '—';
      t.outcome.textContent = 'no device yet';
      delete t.outcome.dataset.ok;
    }
    // The devices before the last one, one short line each.
    t.recent.replaceChildren(
      ...b.recent.slice(1).map((d) => {
        const li = el('li', d.ok ? 'was-ok' : 'was-failed');
        li.append(el('span', 'serial-small', d.serial || '(no serial)'), el('span', '', (d.ok ? ' OK ' : ' FAILED ') + d.what));
        return li;
      }),
    );
    t.port.hidden = !b.port_problem;
    t.port.textContent = b.port_problem || '';
    const e = b.last_error;
    t.error.hidden = !e;
    if (e) {
      t.errorWhen.textContent = 'Last error · ' + ago(e.at_unix_ms);
      t.code.textContent = e.what;
      t.meaning.textContent = e.meaning || '';
      t.meaning.hidden = !e.meaning;
      t.todo.textContent = e.hint || 'see the station log';
      t.who.textContent = e.serial ? 'device ' + e.serial : 'device without a serial yet';
    }
  }

  function renderHeader() {
    byId('station').textContent = view.station;
    document.title = view.station + ': the line';
    const g = view.gate;
    if (!g.required) pill('gate', 'ok', 'AWS GATE NOT REQUIRED');
    else if (g.open) pill('gate', 'ok', 'GATE OPEN');
    else pill('gate', 'bad', 'ISSUANCE HALTED');
    pill('hsm', view.hsm.ok ? 'ok' : 'bad', view.hsm.ok ? 'HSM UP' : 'HSM DOWN');
    pill('ledger', view.ledger.ok ? 'ok' : 'bad', view.ledger.ok ? 'LEDGER OK' : 'LEDGER FAILING');
    const box = byId('problems');
    box.hidden = view.problems.length === 0;
    box.replaceChildren(...view.problems.map((p) => el('div', '', p)));
  }

  function render() {
    if (!view) return;
    renderHeader();
    const names = new Set(view.benches.map((b) => b.name));
    for (const [name, t] of tiles) {
      if (!names.has(name)) {
        t.root.remove();
        tiles.delete(name);
      }
    }
    for (const b of view.benches) {
      let t = tiles.get(b.name);
      if (!t) {
        t = makeTile(b.name);
        tiles.set(b.name, t);
      }
      renderTile(t, b);
    }
    byId('clock').textContent = new Date(stationNow()).toLocaleTimeString([], { hour12: false });
  }

  function setLink(up) {
    linkUp = up;
    document.body.dataset.link = up ? 'live' : 'lost';
    pill('link', up ? 'ok' : 'bad', up ? 'LIVE' : 'NOT CONNECTED: the view is old');
  }

  function connect() {
    const stream = new EventSource('/events');
    stream.addEventListener('line', (ev) => {
      view = JSON.parse(ev.data);
      receivedAt = Date.now();
      setLink(true);
      render();
    });
    // EventSource reconnects by itself; meanwhile the page says the view is old.
    stream.onerror = () => setLink(false);
  }

  setInterval(() => {
    if (linkUp && Date.now() - receivedAt > STALE_MS) setLink(false);
    render();
  }, 1000);
  connect();
})();

'use strict';
'require view';
'require rpc';
'require poll';

/*
 * Status > Mesh node: what a node host needs to see at a glance.
 *
 * Data: ubus "meshnode" status/share/set_share (the agent's rpcd plugin),
 * "lora-bridge" status/recent, "rc" init (restart). Nothing leaves the
 * router: the chart is drawn here from the samples this page polls.
 *
 * The logic is in plain functions (buildModel, checkShare, chartModel,
 * renderModel, renderShareForm) that take data and return data or DOM built
 * with a passed-in E, and are exposed on the view, so tests can load this
 * file with a small stand-in for LuCI's loader (tests/luci/standin/) and
 * check what a host sees in every state.
 */

var POLL_SECONDS = 5;
var CALL_TIMEOUT_MS = 10000;
var WINDOW_SECONDS = 3600;
var CERT_WARN_DAYS = 30;
var SVG_NS = 'http://www.w3.org/2000/svg';

var callStatus = rpc.declare({ object: 'meshnode', method: 'status' });
var callShare = rpc.declare({ object: 'meshnode', method: 'share' });
var callSetShare = rpc.declare({ object: 'meshnode', method: 'set_share', params: [ 'upload_kbit', 'download_kbit' ] });
var callLoraStatus = rpc.declare({ object: 'lora-bridge', method: 'status' });
var callLoraRecent = rpc.declare({ object: 'lora-bridge', method: 'recent', params: [ 'n' ] });
/* rpcd's "rc" object (OpenWrt 21.02 and later): /etc/init.d/<name> <action>. */
var callInit = rpc.declare({ object: 'rc', method: 'init', params: [ 'name', 'action' ] });

/* fmt replaces each %s in s with the next argument (translations keep the
 * placeholders, so word order can change only by rewording). */
function fmt(s) {
	var args = Array.prototype.slice.call(arguments, 1), i = 0;
	return String(s).replace(/%s/g, function() { return i < args.length ? String(args[i++]) : ''; });
}

function isObj(v) { return v != null && typeof v == 'object' && !Array.isArray(v); }
function isNum(v) { return typeof v == 'number' && isFinite(v); }

/* settle turns a call into {ok, value} or {ok:false, error}, never a
 * rejection, and gives up after ms: a hung rpcd must not hang the page. */
function settle(promise, ms) {
	return new Promise(function(resolve) {
		var done = false;
		var timer = setTimeout(function() {
			if (!done) { done = true; resolve({ ok: false, timeout: true, error: fmt(_('no answer within %s seconds'), Math.round(ms / 1000)) }); }
		}, ms);
		Promise.resolve(promise).then(function(v) {
			if (!done) { done = true; clearTimeout(timer); resolve({ ok: true, value: v }); }
		}, function(err) {
			if (!done) { done = true; clearTimeout(timer); resolve({ ok: false, error: String((err && err.message) || err) }); }
		});
	});
}

function rate(kbit) {
	if (!isNum(kbit)) return _('unknown');
	if (kbit >= 1000) return fmt(_('%s Mbit/s'), (kbit / 1000).toFixed(kbit >= 10000 ? 0 : 1));
	return fmt(_('%s kbit/s'), Math.round(kbit));
}

function bytes(n) {
	if (!isNum(n)) return '-';
	var u = [ 'B', 'KiB', 'MiB', 'GiB', 'TiB' ], i = 0;
	while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
	return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

function dateOf(s) {
	var t = Date.parse(s);
	return isNaN(t) || t <= 0 ? null : new Date(t);
}

/* row is one line of the status list. level: ok, warn, bad, unknown, none. */
function row(id, label, level, text, hint) {
	return { id: id, label: label, level: level, text: text, hint: hint || '' };
}

function tunnelRow(st) {
	var lhs = st.lighthouses, peers = Array.isArray(st.peers) ? st.peers.length : null;
	if (!Array.isArray(lhs))
		return row('tunnel', _('Mesh tunnel'), 'unknown', _('Not reported by this agent version'),
			_('Update the meshnode package to see the tunnel state.'));
	if (lhs.length == 0) {
		if (st.role == 'hub')
			return row('tunnel', _('Mesh tunnel'), 'ok', fmt(_('This node is a hub: %s nodes connected'), peers == null ? '?' : peers));
		return row('tunnel', _('Mesh tunnel'), 'unknown', _('No hub configured'), _('Ask your operator to check the configuration.'));
	}
	var up = lhs.filter(function(l) { return l && l.reachable === true; }).length;
	if (up == 0)
		return row('tunnel', _('Mesh tunnel'), 'bad', _('Not connected to the mesh: no hub answers'),
			_('Check that this router has internet access. The tunnel comes back by itself when it has.'));
	if (up < lhs.length)
		return row('tunnel', _('Mesh tunnel'), 'warn', fmt(_('Connected, but %s of %s hubs do not answer'), lhs.length - up, lhs.length),
			_('The mesh still works. If this lasts, tell your operator.'));
	return row('tunnel', _('Mesh tunnel'), 'ok', peers == null ? _('Connected to the mesh') : fmt(_('Connected to the mesh, %s peers reachable'), peers));
}

/* uplinkList reads the uplinks section tolerantly: agent/wan owns its shape. */
function uplinkList(u) {
	var arr = Array.isArray(u) ? u : (isObj(u) ? (u.uplinks || u.links || u.interfaces || []) : []);
	if (!Array.isArray(arr)) arr = [];
	return arr.filter(isObj).map(function(it) {
		var up = null;
		[ 'up', 'online', 'healthy', 'reachable' ].forEach(function(k) { if (up == null && typeof it[k] == 'boolean') up = it[k]; });
		var s = String(it.state || it.status || '').toLowerCase();
		if (up == null && /^(up|online|ok|active|healthy)$/.test(s)) up = true;
		if (up == null && /^(down|offline|failed|dead|unreachable)$/.test(s)) up = false;
		return { name: String(it.name || it.interface || it.device || '?'), up: up,
			active: it.active === true || it.primary === true || it.in_use === true };
	});
}

function uplinksRow(st) {
	if (st.uplinks == null)
		return row('uplinks', _('Internet uplinks'), 'unknown', _('Not reported by this agent version'),
			_('Update the meshnode package to see your uplinks.'));
	var list = uplinkList(st.uplinks);
	if (list.length == 0)
		return row('uplinks', _('Internet uplinks'), 'unknown', _('No uplink configured'), '');
	var down = list.filter(function(l) { return l.up === false; }).map(function(l) { return l.name; });
	var up = list.filter(function(l) { return l.up === true; }).map(function(l) { return l.name; });
	if (up.length == 0 && down.length == list.length)
		return row('uplinks', _('Internet uplinks'), 'bad', _('No uplink reaches the internet'),
			_('Check the cable or the modem of your internet connection.'));
	if (down.length)
		return row('uplinks', _('Internet uplinks'), 'warn', fmt(_('%s is down; using %s'), down.join(', '), up.join(', ') || '?'),
			_('Traffic moved to the uplinks that work. Check the one that is down.'));
	if (up.length < list.length)
		return row('uplinks', _('Internet uplinks'), 'unknown', _('State of some uplinks is unknown'), '');
	return row('uplinks', _('Internet uplinks'), 'ok', fmt(_('All up: %s'), up.join(', ')));
}

function loraRow(lora) {
	if (!lora.ok) {
		if (/not found/i.test(lora.error || ''))
			return row('lora', _('LoRa radio'), 'none', _('No LoRa bridge installed on this node'), '');
		return row('lora', _('LoRa radio'), 'unknown', _('Cannot tell'),
			fmt(_('The LoRa bridge did not answer (%s). It may be stopped: restart the router if this lasts.'), lora.error));
	}
	var v = lora.value, st = isObj(v) && isObj(v.status) ? v.status : v;
	var radio = isObj(st) ? st.radio : null;
	if (isObj(v) && v.error && !isObj(v.status))
		return row('lora', _('LoRa radio'), 'unknown', _('Cannot tell'), fmt(_('The LoRa bridge is not running (%s).'), v.error));
	if (!isObj(radio))
		return row('lora', _('LoRa radio'), 'unknown', _('Not reported by this version'), '');
	var conn = typeof radio.Connected == 'boolean' ? radio.Connected : radio.connected;
	if (conn === true)
		return row('lora', _('LoRa radio'), 'ok', _('Radio connected'));
	if (conn === false)
		return row('lora', _('LoRa radio'), 'bad', _('Radio unplugged or not answering'),
			_('Plug the LoRa radio into the USB port of the router. It reconnects by itself.'));
	return row('lora', _('LoRa radio'), 'unknown', _('Not reported by this version'), '');
}

function certRow(st, now) {
	var c = st.certificate, na = isObj(c) ? dateOf(c.not_after) : null;
	if (!na)
		return row('cert', _('Certificate'), 'unknown', _('Not reported by this agent version'), '');
	var days = isNum(c.days_left) ? c.days_left : Math.floor((na.getTime() - now) / 86400000);
	var date = na.toISOString().slice(0, 10);
	if (na.getTime() <= now)
		return row('cert', _('Certificate'), 'bad', fmt(_('Expired on %s'), date),
			_('The node cannot join the mesh. Ask your operator for a new certificate.'));
	if (days < CERT_WARN_DAYS)
		return row('cert', _('Certificate'), 'warn', fmt(_('Expires in %s days (%s)'), days, date),
			_('Ask your operator for a new certificate soon.'));
	return row('cert', _('Certificate'), 'ok', fmt(_('Valid until %s (%s days)'), date, days));
}

function versionRow(st) {
	if (!st.version)
		return row('version', _('Software'), 'unknown', _('Not reported by this agent version'), '');
	return row('version', _('Software'), 'ok', fmt(_('meshnode %s'), st.version) + (st.nebula ? fmt(_(' (Nebula %s)'), st.nebula) : ''));
}

/* shapingLimit finds the upload/download limits in the shaping section
 * (agent/shape's Status), when the share method is not available. */
function shapingLimit(sh) {
	var out = { up: null, down: null };
	if (!isObj(sh) || !Array.isArray(sh.links) || !sh.links.length) return out;
	(sh.links[0].directions || []).forEach(function(d) {
		if (d && d.direction == 'upload' && isNum(d.limit_kbit)) out.up = d.limit_kbit;
		if (d && d.direction == 'download' && isNum(d.limit_kbit)) out.down = d.limit_kbit;
	});
	return out;
}

/* chartModel turns counter samples [{t (ms), bytes}] into rates over the
 * last hour: points [{t, kbit}] and the time window. */
function chartModel(samples, now) {
	var pts = [];
	for (var i = 1; i < (samples || []).length; i++) {
		var a = samples[i - 1], b = samples[i], dt = (b.t - a.t) / 1000;
		/* A counter going back means the agent restarted: no rate for that step. */
		if (dt <= 0 || b.bytes < a.bytes || b.t < now - WINDOW_SECONDS * 1000) continue;
		pts.push({ t: b.t, kbit: (b.bytes - a.bytes) * 8 / 1000 / dt });
	}
	var max = 0;
	pts.forEach(function(p) { if (p.kbit > max) max = p.kbit; });
	return { points: pts, from: now - WINDOW_SECONDS * 1000, to: now, max: max,
		current: pts.length ? pts[pts.length - 1].kbit : null };
}

function shareRow(st, share, chart) {
	var lim = shapingLimit(st.shaping);
	if (share.ok && isObj(share.value) && !share.value.error) {
		if (share.value.upload_kbit > 0) lim.up = share.value.upload_kbit;
		if (share.value.download_kbit > 0) lim.down = share.value.download_kbit;
	}
	var limitText = (lim.up == null && lim.down == null) ? _('no limit set: the mesh may use your whole connection')
		: fmt(_('limit %s up, %s down'), lim.up == null ? _('none') : rate(lim.up), lim.down == null ? _('none') : rate(lim.down));
	if (!isObj(st.routed))
		return row('share', _('Sharing'), 'unknown', _('Not reported by this agent version'), limitText);
	if (chart.current == null)
		return row('share', _('Sharing'), 'ok', fmt(_('Measuring… (%s)'), limitText), _('The chart fills in while this page is open.'));
	return row('share', _('Sharing'), 'ok', fmt(_('%s right now; %s'), rate(chart.current), limitText));
}

function alertsOf(recent) {
	if (!recent.ok || !isObj(recent.value) || !Array.isArray(recent.value.messages)) return [];
	return recent.value.messages.filter(function(m) { return isObj(m) && m.kind == 'alert'; }).map(function(m) {
		var t = isNum(m.time) ? new Date(m.time > 1e12 ? m.time : m.time * 1000) : null;
		return { time: t ? t.toISOString().replace('T', ' ').slice(0, 16) : '', sender: String(m.sender || ''),
			text: String(m.text || ''), verified: m.verified === true };
	}).slice(-3).reverse();
}

/*
 * buildModel is everything the page shows, from what the calls returned:
 * input = {now (ms), status, share, lora, recent: {ok, value|error}, samples}.
 */
function buildModel(input) {
	var now = input.now, status = input.status || { ok: false, error: _('not loaded') };
	var chart = chartModel(input.samples, now);
	var m = { rows: [], chart: chart, alerts: alertsOf(input.recent || {}), details: [], peers: [], status: null };
	if (!status.ok || !isObj(status.value)) {
		m.overall = { level: 'unknown', title: _('Cannot tell whether your node is working'),
			hint: fmt(_('The router did not answer (%s). Reload this page in a minute; if it keeps happening, restart the router.'),
				status.ok ? _('empty reply') : status.error) };
		[ [ 'tunnel', _('Mesh tunnel') ], [ 'share', _('Sharing') ], [ 'uplinks', _('Internet uplinks') ],
		  [ 'cert', _('Certificate') ], [ 'version', _('Software') ] ].forEach(function(r) {
			m.rows.push(row(r[0], r[1], 'unknown', _('Unknown'), ''));
		});
		m.rows.splice(3, 0, loraRow(input.lora || { ok: false, error: '' }));
		return m;
	}
	var st = status.value;
	m.status = st;
	if (st.running === false) {
		m.overall = { level: 'bad', title: _('The mesh agent is not running'),
			hint: _('Press “Restart the mesh agent” below. If it stops again, tell your operator.') };
		m.details.push([ _('Error'), String(st.error || '') ]);
		[ [ 'tunnel', _('Mesh tunnel') ], [ 'share', _('Sharing') ], [ 'uplinks', _('Internet uplinks') ],
		  [ 'cert', _('Certificate') ], [ 'version', _('Software') ] ].forEach(function(r) {
			m.rows.push(row(r[0], r[1], 'unknown', _('Unknown while the agent is stopped'), ''));
		});
		m.rows.splice(3, 0, loraRow(input.lora || { ok: false, error: '' }));
		return m;
	}
	m.rows = [ tunnelRow(st), shareRow(st, input.share || {}, chart), uplinksRow(st),
		loraRow(input.lora || { ok: false, error: '' }), certRow(st, now), versionRow(st) ];
	var levels = m.rows.map(function(r) { return r.level; });
	if (m.rows[0].level == 'bad' || m.rows[4].level == 'bad')
		m.overall = { level: 'bad', title: _('Your node is not connected to the mesh'), hint: m.rows[m.rows[0].level == 'bad' ? 0 : 4].hint };
	else if (levels.indexOf('bad') >= 0 || levels.indexOf('warn') >= 0)
		m.overall = { level: 'warn', title: _('Your node is working, but needs attention'), hint: _('See the lines marked below.') };
	else if (levels.indexOf('unknown') >= 0)
		m.overall = { level: 'ok', title: _('Your node is working'), hint: _('Some details are unknown; see below.') };
	else
		m.overall = { level: 'ok', title: _('Your node is working'), hint: '' };

	var d = m.details;
	d.push([ _('Role'), String(st.role || '-') ]);
	d.push([ _('Mesh address'), String(st.address || '-') + (st.device ? ' (' + st.device + ')' : '') ]);
	if (isNum(st.port)) d.push([ _('UDP port'), String(st.port) ]);
	if (isNum(st.uptime_seconds)) d.push([ _('Agent running for'), Math.floor(st.uptime_seconds / 3600) + ' h ' + Math.floor(st.uptime_seconds % 3600 / 60) + ' min' ]);
	if (isObj(st.certificate)) d.push([ _('Certificate'), String(st.certificate.name || '-') + ' [' + (st.certificate.groups || []).join(', ') + '] ' + String(st.certificate.not_after || '') ]);
	if (isObj(st.routed)) d.push([ _('Traffic to/from the internet'), bytes(st.routed.bytes_in) + ' / ' + bytes(st.routed.bytes_out) ]);
	(Array.isArray(st.lighthouses) ? st.lighthouses : []).forEach(function(l) {
		d.push([ _('Hub'), String(l.address) + ' ' + (l.endpoints || []).join(' ') + ' ' + (l.reachable ? _('answers') : _('does not answer')) ]);
	});
	if (isObj(st.last_reload))
		d.push([ _('Last configuration change'), String(st.last_reload.time || '') + ' ' + (st.last_reload.ok ? _('applied') : fmt(_('rejected: %s'), st.last_reload.error || '')) ]);
	uplinkList(st.uplinks).forEach(function(u) {
		d.push([ _('Uplink'), u.name + ' ' + (u.up === true ? _('up') : u.up === false ? _('down') : _('unknown')) + (u.active ? ' ' + _('(in use)') : '') ]);
	});
	m.peers = (Array.isArray(st.peers) ? st.peers : []).filter(isObj).map(function(p) {
		return [ String(p.name || ''), String(p.address || ''), p.relays && p.relays.length ? fmt(_('via relay %s'), p.relays.join(',')) : String(p.remote || ''),
			bytes(p.bytes_in), bytes(p.bytes_out) ];
	});
	return m;
}

/* checkShare validates what the host typed (Mbit/s) against the bounds
 * (kbit/s): {ok, kbit} or {ok:false, error}. */
function checkShare(text, bounds) {
	if (!isObj(bounds)) return { ok: false, error: _('Your operator has not allowed changing this limit.') };
	var s = String(text == null ? '' : text).trim().replace(',', '.');
	if (!/^\d+(\.\d+)?$/.test(s)) return { ok: false, error: _('Enter a number of Mbit/s, for example 10 or 2.5.') };
	var kbit = Math.round(parseFloat(s) * 1000);
	if (kbit < bounds.min || kbit > bounds.max)
		return { ok: false, error: fmt(_('Choose a value from %s to %s.'), rate(bounds.min), rate(bounds.max)) };
	return { ok: true, kbit: kbit };
}

var COLORS = {
	ok: [ '#1b5e20', '#e8f5e9', '#2e7d32' ], warn: [ '#6d4c00', '#fff4e0', '#e69500' ],
	bad: [ '#8e0000', '#fdecea', '#c62828' ], unknown: [ '#37474f', '#eceff1', '#78909c' ], none: [ '#37474f', '#f5f5f5', '#b0bec5' ]
};

function levelWord(level) {
	return { ok: _('Good'), warn: _('Attention'), bad: _('Problem'), unknown: _('Unknown'), none: _('Not used') }[level] || _('Unknown');
}

function badge(E, level) {
	var c = COLORS[level] || COLORS.unknown;
	return E('span', { 'class': 'meshnode-badge meshnode-' + level,
		'style': 'display:inline-block;min-width:6.5em;text-align:center;padding:.15em .5em;border-radius:1em;font-weight:bold;color:#fff;background:' + c[2] }, levelWord(level));
}

/* svg builds SVG elements, which E (HTML elements) cannot. */
function svg(tag, attrs, children) {
	var el = document.createElementNS(SVG_NS, tag);
	for (var k in attrs) el.setAttribute(k, attrs[k]);
	(children || []).forEach(function(c) { el.appendChild(typeof c == 'string' ? document.createTextNode(c) : c); });
	return el;
}

/* renderChart draws the shared rate over the last hour; limitKbit (may be
 * null) is a dashed line. */
function renderChart(E, chart, limitKbit) {
	var W = 600, H = 160, L = 56, B = 22, T = 8;
	var top = Math.max(chart.max, limitKbit || 0, 100) * 1.1;
	var x = function(t) { return L + (t - chart.from) / (chart.to - chart.from) * (W - L - 4); };
	var y = function(k) { return T + (1 - k / top) * (H - T - B); };
	var kids = [
		svg('rect', { x: L, y: T, width: W - L - 4, height: H - T - B, fill: '#fafafa', stroke: '#ccc' }),
		svg('text', { x: L - 4, y: T + 10, 'text-anchor': 'end', 'font-size': '11', fill: '#555' }, [ rate(top) ]),
		svg('text', { x: L - 4, y: H - B, 'text-anchor': 'end', 'font-size': '11', fill: '#555' }, [ '0' ]),
		svg('text', { x: L, y: H - 6, 'font-size': '11', fill: '#555' }, [ _('1 hour ago') ]),
		svg('text', { x: W - 4, y: H - 6, 'text-anchor': 'end', 'font-size': '11', fill: '#555' }, [ _('now') ])
	];
	if (isNum(limitKbit) && limitKbit > 0)
		kids.push(svg('line', { 'class': 'meshnode-limit', x1: L, x2: W - 4, y1: y(limitKbit), y2: y(limitKbit), stroke: '#c62828', 'stroke-dasharray': '5,4' }),
			svg('text', { x: W - 8, y: y(limitKbit) - 4, 'text-anchor': 'end', 'font-size': '11', fill: '#c62828' }, [ fmt(_('limit %s'), rate(limitKbit)) ]));
	if (chart.points.length) {
		var pts = chart.points.map(function(p) { return x(p.t).toFixed(1) + ',' + y(p.kbit).toFixed(1); });
		kids.push(svg('polygon', { points: x(chart.points[0].t).toFixed(1) + ',' + y(0) + ' ' + pts.join(' ') + ' ' + x(chart.points[chart.points.length - 1].t).toFixed(1) + ',' + y(0), fill: '#c8e6c9' }),
			svg('polyline', { 'class': 'meshnode-rate', points: pts.join(' '), fill: 'none', stroke: '#2e7d32', 'stroke-width': '2' }));
	}
	var el = svg('svg', { 'class': 'meshnode-chart', viewBox: '0 0 ' + W + ' ' + H, width: '100%', role: 'img',
		'style': 'max-width:' + W + 'px' }, kids);
	return E('figure', { 'style': 'margin:.5em 0' }, [ el,
		E('figcaption', { 'style': 'font-size:90%;color:#555' }, _('Internet traffic of other mesh users through your connection, last hour (measured while this page is open).')) ]);
}

/* renderModel builds the status part of the page. opts.detailsOpen keeps
 * the technical details open across refreshes. */
function renderModel(m, E, opts) {
	opts = opts || {};
	var c = COLORS[m.overall.level] || COLORS.unknown;
	var banner = E('div', { 'class': 'meshnode-overall meshnode-' + m.overall.level, 'role': 'status',
		'style': 'border-left:.5em solid ' + c[2] + ';background:' + c[1] + ';color:' + c[0] + ';padding:.8em 1em;margin-bottom:1em;border-radius:.25em' }, [
		E('div', { 'style': 'font-size:1.4em;font-weight:bold' }, m.overall.title),
		m.overall.hint ? E('div', { 'class': 'meshnode-hint', 'style': 'margin-top:.3em' }, m.overall.hint) : ''
	]);
	var rows = m.rows.map(function(r) {
		return E('div', { 'class': 'tr meshnode-row', 'data-row': r.id, 'data-level': r.level }, [
			E('div', { 'class': 'td left', 'style': 'width:9em;vertical-align:top' }, badge(E, r.level)),
			E('div', { 'class': 'td left', 'style': 'width:11em;font-weight:bold;vertical-align:top' }, r.label),
			E('div', { 'class': 'td left' }, [
				E('div', { 'class': 'meshnode-text' }, r.text),
				r.hint ? E('div', { 'class': 'meshnode-hint', 'style': 'color:#555;font-size:90%' }, r.hint) : ''
			])
		]);
	});
	var lim = null, shareRowData = m.rows.filter(function(r) { return r.id == 'share'; })[0];
	if (opts.limitKbit != null) lim = opts.limitKbit;
	var parts = [ banner, E('div', { 'class': 'table meshnode-rows', 'style': 'width:100%' }, rows) ];
	if (shareRowData && shareRowData.level != 'unknown')
		parts.push(E('h3', {}, _('Shared bandwidth')), renderChart(E, m.chart, lim));
	if (m.alerts.length)
		parts.push(E('h3', {}, _('Latest LoRa alerts')), E('ul', { 'class': 'meshnode-alerts' }, m.alerts.map(function(a) {
			return E('li', {}, [ E('strong', {}, a.time), ' ', a.text, ' ', E('em', {}, a.verified ? fmt(_('(signed by %s)'), a.sender) : _('(not verified)')) ]);
		})));
	var tech = [ E('summary', { 'style': 'cursor:pointer' }, _('Technical details')),
		E('div', { 'class': 'table' }, m.details.map(function(d) {
			return E('div', { 'class': 'tr' }, [ E('div', { 'class': 'td left', 'style': 'width:14em' }, d[0]), E('div', { 'class': 'td left' }, d[1]) ]);
		})) ];
	if (m.peers.length)
		tech.push(E('div', { 'class': 'table meshnode-peers' }, [ E('div', { 'class': 'tr table-titles' }, [
			E('div', { 'class': 'th' }, _('Peer')), E('div', { 'class': 'th' }, _('Address')), E('div', { 'class': 'th' }, _('Path')),
			E('div', { 'class': 'th' }, _('Received')), E('div', { 'class': 'th' }, _('Sent')) ]) ].concat(m.peers.map(function(p) {
			return E('div', { 'class': 'tr' }, p.map(function(v) { return E('div', { 'class': 'td' }, v); }));
		}))));
	var det = E('details', { 'class': 'meshnode-details', 'style': 'margin-top:1em' }, tech);
	if (opts.detailsOpen) det.setAttribute('open', '');
	if (opts.onToggle) det.addEventListener('toggle', function() { opts.onToggle(det.open); });
	parts.push(det);
	return E('div', { 'class': 'meshnode-status' }, parts);
}

/* renderShareForm: the sharing limit inputs, checked as the host types and
 * again by the agent (set_share) after submission. */
function renderShareForm(E, share, onSubmit) {
	if (!share || !share.ok)
		return E('p', { 'class': 'meshnode-share-unknown' }, fmt(_('The sharing limit is unknown (%s).'), share ? share.error : _('not loaded')));
	var v = share.value || {};
	if (v.error)
		return E('p', { 'class': 'meshnode-share-unknown' }, fmt(_('The sharing limit cannot be changed here: %s'), v.error));
	var dirs = [];
	if (isObj(v.upload_bounds) && v.upload_kbit > 0) dirs.push([ 'upload_kbit', _('Upload limit'), v.upload_bounds, v.upload_kbit ]);
	if (isObj(v.download_bounds) && v.download_kbit > 0) dirs.push([ 'download_kbit', _('Download limit'), v.download_bounds, v.download_kbit ]);
	if (!dirs.length)
		return E('p', { 'class': 'meshnode-share-fixed' }, _('Your operator has not allowed changing the sharing limit on this node.'));
	var msg = E('div', { 'class': 'meshnode-share-msg', 'role': 'alert', 'style': 'margin:.3em 0' }, '');
	var btn = E('button', { 'class': 'cbi-button cbi-button-apply meshnode-share-save', 'type': 'submit' }, _('Save limit'));
	var inputs = dirs.map(function(d) {
		return E('input', { 'class': 'cbi-input-text', 'type': 'text', 'inputmode': 'decimal', 'name': d[0], 'size': '8',
			'value': String(d[3] / 1000), 'data-min': String(d[2].min), 'data-max': String(d[2].max) });
	});
	var check = function() {
		var errs = [], vals = {};
		inputs.forEach(function(inp, i) {
			var r = checkShare(inp.value, dirs[i][2]);
			inp.style.borderColor = r.ok ? '' : '#c62828';
			if (r.ok) vals[dirs[i][0]] = r.kbit; else errs.push(dirs[i][1] + ': ' + r.error);
		});
		msg.textContent = errs.join(' ');
		msg.style.color = errs.length ? '#c62828' : '';
		btn.disabled = errs.length > 0;
		return errs.length ? null : vals;
	};
	inputs.forEach(function(inp) { inp.addEventListener('input', check); });
	var form = E('form', { 'class': 'meshnode-share-form' }, dirs.map(function(d, i) {
		return E('div', { 'style': 'margin:.3em 0' }, [ E('label', { 'style': 'display:inline-block;width:10em' }, d[1]), inputs[i], ' ',
			fmt(_('Mbit/s (from %s to %s)'), rate(d[2].min), rate(d[2].max)) ]);
	}).concat([ msg, btn ]));
	form.addEventListener('submit', function(ev) {
		ev.preventDefault();
		var vals = check();
		if (!vals) return;
		btn.disabled = true;
		msg.style.color = '';
		msg.textContent = _('Saving…');
		Promise.resolve(onSubmit(vals)).then(function(r) {
			btn.disabled = false;
			if (r.ok && isObj(r.value) && r.value.ok) {
				msg.style.color = '#2e7d32';
				msg.textContent = r.value.applied ? _('Saved and applied.') : fmt(_('Saved. %s'), r.value.hint || '');
			} else {
				msg.style.color = '#c62828';
				msg.textContent = fmt(_('Not saved: %s'), r.ok ? ((r.value && r.value.error) || _('no answer')) : r.error);
			}
		});
	});
	return form;
}

return view.extend({
	handleSave: null,
	handleSaveApply: null,
	handleReset: null,

	/* Exposed for tests (tests/luci): pure logic and renderers. */
	buildModel: buildModel,
	checkShare: checkShare,
	chartModel: chartModel,
	renderModel: renderModel,
	renderShareForm: renderShareForm,
	uplinkList: uplinkList,

	samples: null,
	detailsOpen: false,
	shareJSON: null,

	gather: function() {
		return Promise.all([
			settle(callStatus(), CALL_TIMEOUT_MS),
			settle(callShare(), CALL_TIMEOUT_MS),
			settle(callLoraStatus(), CALL_TIMEOUT_MS),
			settle(callLoraRecent(20), CALL_TIMEOUT_MS)
		]).then(function(r) { return { status: r[0], share: r[1], lora: r[2], recent: r[3] }; });
	},

	load: function() {
		return this.gather();
	},

	/* update records a sample and redraws the status part. */
	update: function(data) {
		var now = Date.now();
		var st = data.status.ok && isObj(data.status.value) ? data.status.value : null;
		if (st && isObj(st.routed) && isNum(st.routed.bytes_in) && isNum(st.routed.bytes_out)) {
			this.samples.push({ t: now, bytes: st.routed.bytes_in + st.routed.bytes_out });
			while (this.samples.length && this.samples[0].t < now - (WINDOW_SECONDS + 60) * 1000) this.samples.shift();
		}
		var m = buildModel({ now: now, status: data.status, share: data.share, lora: data.lora, recent: data.recent, samples: this.samples });
		var lim = null;
		if (data.share.ok && isObj(data.share.value) && data.share.value.upload_kbit > 0) lim = data.share.value.upload_kbit;
		else if (st) lim = shapingLimit(st.shaping).up;
		var self = this;
		var node = renderModel(m, E, { detailsOpen: this.detailsOpen, limitKbit: lim, onToggle: function(open) { self.detailsOpen = open; } });
		this.statusBox.innerHTML = '';
		this.statusBox.appendChild(node);

		/* Redraw the form only when the limit or its bounds changed and the
		 * host is not typing in it. */
		var sj = JSON.stringify(data.share);
		if (sj != this.shareJSON && !this.shareBox.contains(document.activeElement)) {
			this.shareJSON = sj;
			this.shareBox.innerHTML = '';
			this.shareBox.appendChild(renderShareForm(E, data.share, function(vals) {
				return settle(callSetShare(vals.upload_kbit, vals.download_kbit), CALL_TIMEOUT_MS);
			}));
		}
	},

	handleRestart: function(ev) {
		var msg = this.restartMsg, btn = ev.currentTarget;
		btn.disabled = true;
		msg.textContent = _('Restarting the mesh agent… the tunnel comes back within a minute.');
		return settle(callInit('meshnode', 'restart'), 30000).then(function(r) {
			btn.disabled = false;
			msg.textContent = r.ok ? _('The mesh agent was restarted.') : fmt(_('Could not restart the agent: %s'), r.error);
		});
	},

	render: function(data) {
		this.samples = [];
		this.statusBox = E('div', { 'class': 'meshnode-status-box' });
		this.shareBox = E('div', { 'class': 'meshnode-share-box' });
		this.restartMsg = E('span', { 'class': 'meshnode-restart-msg', 'style': 'margin-left:1em' }, '');
		this.update(data);
		var self = this;
		poll.add(function() { return self.gather().then(function(d) { self.update(d); }); }, POLL_SECONDS);
		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, _('Mesh node')),
			E('div', { 'class': 'cbi-map-descr' }, _('Is your node working, and what it shares with the community network. Updated every few seconds.')),
			this.statusBox,
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, _('Sharing limit')), this.shareBox ]),
			E('div', { 'class': 'cbi-section' }, [ E('h3', {}, _('Actions')),
				E('button', { 'class': 'cbi-button cbi-button-action meshnode-restart', 'click': function(ev) { return self.handleRestart(ev); } }, _('Restart the mesh agent')),
				this.restartMsg ])
		]);
	}
});

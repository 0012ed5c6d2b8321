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

/* when formats a past or future instant for people: the time of day, with
 * the date when it is not today. */
function when(d, now) {
	if (!d) return '';
	var pad = function(n) { return (n < 10 ? '0' : '') + n; };
	var hm = pad(d.getHours()) + ':' + pad(d.getMinutes());
	return new Date(now).toDateString() == d.toDateString() ? hm : d.toISOString().slice(0, 10) + ' ' + hm;
}

/* span is a duration in plain words. */
function span(ms) {
	var s = Math.max(0, Math.round(ms / 1000));
	if (s < 90) return fmt(_('%s seconds'), s);
	if (s < 5400) return fmt(_('%s minutes'), Math.round(s / 60));
	if (s < 172800) return fmt(_('%s hours'), Math.round(s / 3600));
	return fmt(_('%s days'), Math.round(s / 86400));
}

/*
 * Uplinks: the "uplinks" section of agent/wan (wan.Status):
 * {active: [names], class, uplinks: [{name, kind, state (up, down, probing,
 * damped), reason, since, active, carrier, rtt_ms, loss, held_until, ...}]}.
 */
function uplinkStates() {
	return {
		up: [ 'ok', _('working') ],
		probing: [ 'warn', _('checking') ],
		damped: [ 'warn', _('unstable, held back') ],
		down: [ 'bad', _('not working') ]
	};
}

/* whyPlain says in plain words why an uplink is in its state, from the
 * agent's reason (agent/wan's tracker and pathState); an unknown reason
 * is shown as it is. */
function whyPlain(reason) {
	var r = String(reason || ''), m;
	if (r == '') return '';
	if (r == 'starting') return _('The node has just started and is testing this connection.');
	if (/^path via \S+ ready, probing$/.test(r)) return _('The connection is back; the node is testing it.');
	if (/good probe rounds in a row$/.test(r)) return _('Test messages through this connection are answered.');
	if (/^damping hold over/.test(r)) return _('It stayed stable while held back, so it is used again.');
	if ((m = /^flapped (\d+) times/.exec(r)) != null)
		return fmt(_('It dropped out %s times in a short while, so the node waits until it stays stable.'), m[1]);
	if (/probe rounds (?:failed|in a row)/.test(r) || /^failed while damped/.test(r))
		return _('Test messages through this connection got no answer: the internet behind it cannot be reached.');
	if (/^no carrier on /.test(r)) return _('The cable is unplugged or the modem is switched off.');
	if (/^interface \S+ does not exist$/.test(r)) return _('The router does not see this connection (is the modem unplugged?).');
	if (/^netifd reports interface /.test(r)) return _('The router has switched this connection off.');
	if (/^waiting for netifd/.test(r)) return _('Waiting for the router to bring this connection up.');
	if (/^no gateway for /.test(r)) return _('The modem has not given the router an address yet.');
	return r;
}

/* uplinkList reads the uplinks section: one entry per uplink with its
 * state in colours and words for people. Entries of unknown shape are
 * skipped, an unknown state is "unknown". */
function uplinkList(u, now) {
	var arr = isObj(u) && Array.isArray(u.uplinks) ? u.uplinks : (Array.isArray(u) ? u : []);
	var active = isObj(u) && Array.isArray(u.active) ? u.active : [];
	var states = uplinkStates();
	return arr.filter(isObj).map(function(it) {
		var state = String(it.state || ''), s = states[state] || [ 'unknown', _('unknown') ];
		var name = String(it.name || it.interface || it.device || '?');
		var since = dateOf(it.since), held = dateOf(it.held_until), hint = '';
		var why = whyPlain(it.reason);
		if (it.probe_error) why = fmt(_('The node cannot test this connection: %s'), it.probe_error);
		if (state == 'probing')
			hint = _('This takes a few seconds after the router starts or a connection comes back.');
		else if (state == 'damped')
			hint = held ? fmt(_('It is used again at %s if it stays stable.'), when(held, now)) : _('It is used again once it stays stable.');
		else if (state == 'down')
			hint = /^no carrier on /.test(it.reason || '') ? _('Check the cable and that the modem is switched on.')
				: _('The modem may have lost its internet connection; restarting the modem often helps.');
		return { name: name, state: state || 'unknown', level: s[0], word: s[1], why: why, hint: hint,
			active: it.active === true || active.indexOf(name) >= 0, since: since, raw: it };
	});
}

function uplinksRow(st, now) {
	if (st.uplinks == null)
		return row('uplinks', _('Internet uplinks'), 'unknown', _('Not reported by this agent version'),
			_('Update the meshnode package to see your uplinks.'));
	if (!isObj(st.uplinks) || !Array.isArray(st.uplinks.uplinks))
		return row('uplinks', _('Internet uplinks'), 'unknown', _('Unknown'), _('This agent reports its uplinks in a form this page does not know.'));
	var list = uplinkList(st.uplinks, now);
	if (list.length == 0)
		return row('uplinks', _('Internet uplinks'), 'none', _('No extra uplinks set up'),
			_('This node uses the router’s own internet connection.'));
	var by = function(level) { return list.filter(function(l) { return l.level == level; }); };
	var names = function(ls) { return ls.map(function(l) { return l.name; }).join(', '); };
	var inUse = list.filter(function(l) { return l.active; });
	var r;
	if (by('bad').length == list.length) {
		r = row('uplinks', _('Internet uplinks'), 'bad', _('No uplink reaches the internet'),
			_('The node keeps testing them and uses the first one that works again. Check your modems.'));
	} else if (by('bad').length || by('warn').length || by('unknown').length) {
		var parts = list.filter(function(l) { return l.level != 'ok'; }).map(function(l) { return fmt(_('%s: %s'), l.name, l.word); });
		r = row('uplinks', _('Internet uplinks'), by('bad').length || by('warn').length ? 'warn' : 'unknown',
			parts.join('; ') + (inUse.length ? '; ' + fmt(_('traffic goes through %s'), names(inUse)) : ''),
			by('bad').length ? _('Traffic moved to the uplinks that work. See below what is wrong.') : '');
	} else {
		r = row('uplinks', _('Internet uplinks'), 'ok', inUse.length ? fmt(_('All working; in use: %s'), names(inUse)) : _('All working'));
	}
	r.items = list;
	return r;
}

/*
 * LoRa: lora-bridge's "status" reply {status: {radio: {Connected,
 * LastError, ConnectedFor (ns), Reconnects, ...}, node, journal: {Pending,
 * ...}, counters, airtime: {used_ms, limit_ms}, peers}}, or {error} when
 * the bridge does not answer its socket.
 */
function loraStatus(lora, st) {
	if (lora.ok && isObj(lora.value) && isObj(lora.value.status)) return lora.value.status;
	/* The agent may carry the bridge's status in its own snapshot. */
	if (!lora.ok && isObj(st) && isObj(st.lora)) return isObj(st.lora.status) ? st.lora.status : st.lora;
	return null;
}

function loraRow(lora, st) {
	var s = loraStatus(lora, st);
	if (!s && !lora.ok) {
		if (/not found/i.test(lora.error || ''))
			return row('lora', _('LoRa radio'), 'none', _('No LoRa bridge installed on this node'), '');
		return row('lora', _('LoRa radio'), 'unknown', _('Cannot tell'),
			fmt(_('The router did not answer for the LoRa bridge (%s). Reload the page in a minute.'), lora.error));
	}
	var v = lora.value;
	if (!s && isObj(v) && v.error)
		return row('lora', _('LoRa radio'), 'bad', _('The LoRa bridge is not running'),
			_('Restart the router. If it stays off, tell your operator.'));
	var radio = isObj(s) ? s.radio : null;
	if (!isObj(radio) || typeof radio.Connected != 'boolean')
		return row('lora', _('LoRa radio'), 'unknown', _('Not reported by this version'), _('Update the lora-bridge package.'));
	if (!radio.Connected)
		return row('lora', _('LoRa radio'), 'bad', _('Radio unplugged or not answering'),
			_('Plug the LoRa radio into the USB port of the router. It reconnects by itself.'));
	/* ConnectedFor is a Go duration: nanoseconds. */
	var text = isNum(radio.ConnectedFor) && radio.ConnectedFor >= 60e9
		? fmt(_('Radio connected for %s'), span(radio.ConnectedFor / 1e6)) : _('Radio connected');
	var a = s.airtime, hint = '';
	if (isObj(a) && isNum(a.limit_ms) && a.limit_ms > 0 && a.used_ms >= a.limit_ms * 0.9)
		hint = _('The radio has nearly used the airtime it may use; messages wait a little before they go out.');
	return row('lora', _('LoRa radio'), 'ok', text, hint);
}

/* alertText drops the signature and time stamp lora-bridge's alert
 * payloads carry (text " @<unix time>\nsig:<base64>"). */
function alertText(s) {
	s = String(s || '');
	var i = s.lastIndexOf('\nsig:');
	if (i >= 0) s = s.slice(0, i);
	return s.replace(/ @\d{9,12}$/, '');
}

function alertsOf(recent, now) {
	if (!recent.ok || !isObj(recent.value) || !Array.isArray(recent.value.messages)) return [];
	return recent.value.messages.filter(function(m) { return isObj(m) && m.kind == 'alert'; }).map(function(m) {
		var t = isNum(m.time) ? new Date(m.time > 1e12 ? m.time : m.time * 1000) : null;
		return { time: when(t, now), sender: String(m.sender || ''), text: alertText(m.text), verified: m.verified === true };
	}).slice(-3).reverse();
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
		return row('cert', _('Certificate'), 'warn', days < 1 ? fmt(_('Expires within a day (%s)'), date)
			: (days == 1 ? fmt(_('Expires in 1 day (%s)'), date) : fmt(_('Expires in %s days (%s)'), days, date)),
			_('Ask your operator for a new certificate soon.'));
	return row('cert', _('Certificate'), 'ok', fmt(_('Valid until %s (%s days)'), date, days));
}

function versionRow(st) {
	if (!st.version)
		return row('version', _('Software'), 'unknown', _('Not reported by this agent version'), '');
	return row('version', _('Software'), 'ok', fmt(_('meshnode %s'), st.version) + (st.nebula ? fmt(_(' (Nebula %s)'), st.nebula) : ''));
}

/*
 * Sharing: the "shaping" section of agent/shape (shape.Status):
 * {links: [{device, ifb, window ("default" or "HH:MM-HH:MM"), leaf,
 * directions: [{direction (upload, download), device, limit_kbit,
 * classes: [{name, rate_kbit, ceil_kbit, bytes, packets, drops,
 * backlog_bytes, ...}]}]}], last_error}. The limits there are the ones in
 * force now, a schedule window included; the "share" method gives the
 * configured limit and the operator's bounds.
 */
function shareDevice(share) {
	return share && share.ok && isObj(share.value) && share.value.device ? String(share.value.device) : '';
}

function shapingLink(sh, device) {
	if (!isObj(sh) || !Array.isArray(sh.links)) return null;
	var links = sh.links.filter(isObj);
	return links.filter(function(l) { return device && l.device == device; })[0] || links[0] || null;
}

function treeOf(link, dir) {
	if (!isObj(link) || !Array.isArray(link.directions)) return null;
	return link.directions.filter(function(d) { return isObj(d) && d.direction == dir; })[0] || null;
}

/* treeBytes sums the bytes of a direction's classes: everything the mesh
 * sent that way. null when the counters could not be read. */
function treeBytes(t) {
	if (!isObj(t) || !Array.isArray(t.classes) || !t.classes.length) return null;
	var n = 0;
	for (var i = 0; i < t.classes.length; i++) {
		if (!isObj(t.classes[i]) || !isNum(t.classes[i].bytes)) return null;
		n += t.classes[i].bytes;
	}
	return n;
}

/* sampleOf is one point of the counters the chart is drawn from: bytes
 * of the shaped WAN per direction (up, down) and the agent's routed
 * bytes (total), each null when not reported. */
function sampleOf(st, share, t) {
	var link = shapingLink(st.shaping, shareDevice(share));
	var r = st.routed;
	return { t: t, up: treeBytes(treeOf(link, 'upload')), down: treeBytes(treeOf(link, 'download')),
		total: isObj(r) && isNum(r.bytes_in) && isNum(r.bytes_out) ? r.bytes_in + r.bytes_out : null };
}

/* limitsOf: the sharing limit in force {up, down (kbit/s or null),
 * window, inForce, error}. */
function limitsOf(st, share) {
	var out = { up: null, down: null, window: '', inForce: false, configured: false, error: '' };
	var sh = st.shaping, link = shapingLink(sh, shareDevice(share));
	if (isObj(sh) && sh.last_error) out.error = String(sh.last_error);
	if (link) {
		var u = treeOf(link, 'upload'), d = treeOf(link, 'download');
		if (u && isNum(u.limit_kbit) && u.limit_kbit > 0) out.up = u.limit_kbit;
		if (d && isNum(d.limit_kbit) && d.limit_kbit > 0) out.down = d.limit_kbit;
		out.window = link.window && link.window != 'default' ? String(link.window) : '';
		out.inForce = true;
		return out;
	}
	if (share && share.ok && isObj(share.value) && !share.value.error) {
		if (share.value.upload_kbit > 0) out.up = share.value.upload_kbit;
		if (share.value.download_kbit > 0) out.down = share.value.download_kbit;
		out.configured = out.up != null || out.down != null;
	}
	return out;
}

/* chartModel turns counter samples [{t (ms), up, down, total}] into rates
 * over the last hour: series [{key, points [{t, kbit}], current}], drawn
 * from the shaped WAN's counters (up, down) when the latest sample has
 * them, else from the agent's routed bytes (total). */
function chartModel(samples, now) {
	samples = Array.isArray(samples) ? samples : [];
	var rates = function(k) {
		var pts = [];
		for (var i = 1; i < samples.length; i++) {
			var a = samples[i - 1], b = samples[i], dt = (b.t - a.t) / 1000;
			/* A counter going back means the agent restarted or rebuilt
			 * its queues: no rate for that step. */
			if (!isNum(a[k]) || !isNum(b[k]) || dt <= 0 || b[k] < a[k] || b.t < now - WINDOW_SECONDS * 1000) continue;
			pts.push({ t: b.t, kbit: (b[k] - a[k]) * 8 / 1000 / dt });
		}
		return pts;
	};
	var last = samples.length ? samples[samples.length - 1] : {};
	var keys = isNum(last.up) || isNum(last.down) ? [ 'up', 'down' ].filter(function(k) { return isNum(last[k]); })
		: (isNum(last.total) ? [ 'total' ] : []);
	var max = 0;
	var series = keys.map(function(k) {
		var pts = rates(k);
		pts.forEach(function(p) { if (p.kbit > max) max = p.kbit; });
		return { key: k, points: pts, current: pts.length ? pts[pts.length - 1].kbit : null, limit: null };
	});
	return { series: series, from: now - WINDOW_SECONDS * 1000, to: now, max: max,
		mode: keys[0] == 'total' ? 'routed' : (keys.length ? 'shaping' : '') };
}

function seriesOf(chart, key) {
	return chart.series.filter(function(s) { return s.key == key; })[0] || null;
}

function shareRow(st, lim, chart) {
	var fmtLim = function(v) { return v == null ? _('no limit') : rate(v); };
	var limitText = (lim.up == null && lim.down == null) ? _('No limit set: the mesh may use your whole connection.')
		: fmt(_('Limit: %s up, %s down.'), fmtLim(lim.up), fmtLim(lim.down));
	if (lim.window) limitText += ' ' + fmt(_('(schedule %s in force)'), lim.window);
	if (!isObj(st.routed) && !isObj(st.shaping))
		return row('share', _('Sharing'), 'unknown', _('Not reported by this agent version'), limitText);
	var up = seriesOf(chart, 'up'), down = seriesOf(chart, 'down'), total = seriesOf(chart, 'total');
	var now = null;
	if (chart.mode == 'shaping' && ((up && up.current != null) || (down && down.current != null)))
		now = fmt(_('Right now: %s up, %s down.'), up && up.current != null ? rate(up.current) : '-', down && down.current != null ? rate(down.current) : '-');
	else if (chart.mode == 'routed' && total.current != null)
		now = fmt(_('Right now: %s in total.'), rate(total.current));
	var level = 'ok', hint = '';
	if (lim.error) {
		level = 'warn';
		hint = fmt(_('The limit could not be fully applied (%s). Tell your operator.'), lim.error);
	} else if (isObj(st.shaping) && lim.configured) {
		level = 'warn';
		limitText = fmt(_('Limit set to %s up, %s down, but not in force.'), fmtLim(lim.up), fmtLim(lim.down));
		hint = _('The node could not apply the limit (is the internet interface missing?). Tell your operator.');
	} else if (now == null) {
		hint = _('Measuring… the chart fills in while this page is open.');
	} else if (up && lim.up && up.current >= lim.up * 0.9) {
		hint = _('The mesh is using all the upload you share right now. It never takes more than the limit.');
	} else if (lim.window) {
		hint = _('Your operator set a different limit for this time of day.');
	}
	return row('share', _('Sharing'), level, (now ? now + ' ' : '') + limitText, hint);
}

function rowById(rows, id) { return rows.filter(function(r) { return r.id == id; })[0]; }

/*
 * buildModel is everything the page shows, from what the calls returned:
 * input = {now (ms), status, share, lora, recent: {ok, value|error}, samples}.
 */
function buildModel(input) {
	var now = input.now, status = input.status || { ok: false, error: _('not loaded') };
	var share = input.share || {}, lora = input.lora || { ok: false, error: '' };
	var chart = chartModel(input.samples, now);
	var m = { rows: [], chart: chart, alerts: alertsOf(input.recent || {}, now), details: [], peers: [], status: null };
	var unknownRows = function(text) {
		[ [ 'tunnel', _('Mesh tunnel') ], [ 'share', _('Sharing') ], [ 'uplinks', _('Internet uplinks') ],
		  [ 'cert', _('Certificate') ], [ 'version', _('Software') ] ].forEach(function(r) {
			m.rows.push(row(r[0], r[1], 'unknown', text, ''));
		});
		m.rows.splice(3, 0, loraRow(lora, null));
	};
	if (!status.ok || !isObj(status.value)) {
		m.overall = { level: 'unknown', title: _('Cannot tell whether your node is working'),
			hint: fmt(_('The router did not answer (%s). Reload this page in a minute; if it keeps happening, restart the router.'),
				status.ok ? _('empty reply') : status.error) };
		unknownRows(_('Unknown'));
		return m;
	}
	var st = status.value;
	m.status = st;
	if (st.running === false) {
		m.overall = { level: 'bad', title: _('The mesh agent is not running'),
			hint: _('Press “Restart the mesh agent” below. If it stops again, tell your operator.') };
		m.details.push([ _('Error'), String(st.error || '') ]);
		unknownRows(_('Unknown while the agent is stopped'));
		return m;
	}
	var lim = limitsOf(st, share);
	if (chart.mode == 'shaping')
		chart.series.forEach(function(s) { s.limit = s.key == 'up' ? lim.up : (s.key == 'down' ? lim.down : null); });
	m.limits = lim;
	m.rows = [ tunnelRow(st), shareRow(st, lim, chart), uplinksRow(st, now),
		loraRow(lora, st), certRow(st, now), versionRow(st) ];
	var levels = m.rows.map(function(r) { return r.level; });
	var tunnel = rowById(m.rows, 'tunnel'), cert = rowById(m.rows, 'cert'), ups = rowById(m.rows, 'uplinks');
	if (ups.level == 'bad')
		m.overall = { level: 'bad', title: _('Your node has no internet connection'), hint: ups.hint };
	else if (tunnel.level == 'bad' || cert.level == 'bad')
		m.overall = { level: 'bad', title: _('Your node is not connected to the mesh'), hint: tunnel.level == 'bad' ? tunnel.hint : cert.hint };
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
	(ups.items || []).forEach(function(u) {
		var x = u.raw, parts = [ u.state + (u.active ? ', ' + _('in use') : '') ];
		if (x.kind) parts.push(fmt(_('kind %s'), x.kind) + (x.device ? ' ' + fmt(_('on %s'), x.device) : '') + (x.gateway ? ' ' + fmt(_('via %s'), x.gateway) : ''));
		if (isNum(x.rtt_ms) && x.rtt_ms > 0) parts.push(fmt(_('RTT %s ms'), x.rtt_ms.toFixed(1)));
		if (isNum(x.loss)) parts.push(fmt(_('loss %s'), Math.round(x.loss * 100) + ' %'));
		if (u.since) parts.push(fmt(_('since %s'), when(u.since, now)));
		if (x.reason) parts.push(fmt(_('why: %s'), x.reason));
		if (x.last_failure) parts.push(fmt(_('last failure: %s'), x.last_failure));
		d.push([ fmt(_('Uplink %s'), u.name), parts.join('; ') ]);
	});
	var link = shapingLink(st.shaping, shareDevice(share));
	if (link) (link.directions || []).filter(isObj).forEach(function(t) {
		var cls = (t.classes || []).filter(isObj).map(function(c) {
			return fmt(_('%s: %s sent, %s dropped, %s queued'), c.name, bytes(c.bytes), String(c.drops), bytes(c.backlog_bytes));
		});
		d.push([ fmt(_('Shaping %s'), t.direction), fmt(_('%s on %s, window %s, leaf %s'), rate(t.limit_kbit), t.device, link.window, link.leaf) + (cls.length ? '; ' + cls.join('; ') : '') ]);
	});
	var ls = loraStatus(lora, st);
	if (isObj(ls)) {
		if (isObj(ls.radio) && ls.radio.LastError) d.push([ _('LoRa radio error'), String(ls.radio.LastError) ]);
		if (ls.node) d.push([ _('LoRa node'), String(ls.node) ]);
		if (isObj(ls.journal) && isNum(ls.journal.Pending)) d.push([ _('LoRa messages waiting'), String(ls.journal.Pending) ]);
		if (isObj(ls.airtime) && isNum(ls.airtime.limit_ms) && ls.airtime.limit_ms > 0)
			d.push([ _('LoRa airtime used'), Math.round(ls.airtime.used_ms / 1000) + ' s / ' + Math.round(ls.airtime.limit_ms / 1000) + ' s' ]);
	}
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

function seriesStyle(key) {
	return {
		up: { color: '#2e7d32', fill: '#c8e6c9', label: _('Sent (upload)'), limit: _('upload limit %s') },
		down: { color: '#1565c0', fill: 'none', label: _('Received (download)'), limit: _('download limit %s') },
		total: { color: '#2e7d32', fill: '#c8e6c9', label: _('Sent and received'), limit: _('limit %s') }
	}[key];
}

/* renderChart draws the shared rates over the last hour, one line per
 * series, with each series' limit in force (may be null) dashed. */
function renderChart(E, chart) {
	var W = 600, H = 170, L = 62, B = 22, T = 8;
	var top = Math.max(chart.max, 100);
	chart.series.forEach(function(s) { if (isNum(s.limit) && s.limit > top) top = s.limit; });
	top *= 1.1;
	var x = function(t) { return L + (t - chart.from) / (chart.to - chart.from) * (W - L - 4); };
	var y = function(k) { return T + (1 - k / top) * (H - T - B); };
	var kids = [
		svg('rect', { x: L, y: T, width: W - L - 4, height: H - T - B, fill: '#fafafa', stroke: '#ccc' }),
		svg('text', { x: L - 4, y: T + 10, 'text-anchor': 'end', 'font-size': '11', fill: '#555' }, [ rate(top) ]),
		svg('text', { x: L - 4, y: H - B, 'text-anchor': 'end', 'font-size': '11', fill: '#555' }, [ '0' ]),
		svg('text', { x: L, y: H - 6, 'font-size': '11', fill: '#555' }, [ _('1 hour ago') ]),
		svg('text', { x: W - 4, y: H - 6, 'text-anchor': 'end', 'font-size': '11', fill: '#555' }, [ _('now') ])
	];
	var labelYs = [];
	chart.series.forEach(function(s) {
		if (!isNum(s.limit) || s.limit <= 0) return;
		var st = seriesStyle(s.key), ly = y(s.limit);
		/* Two limits close together: the second label goes below its line. */
		var ty = labelYs.some(function(o) { return Math.abs(o - ly) < 14; }) ? ly + 12 : ly - 4;
		labelYs.push(ly);
		kids.push(svg('line', { 'class': 'meshnode-limit meshnode-limit-' + s.key, 'data-kbit': String(s.limit),
			x1: L, x2: W - 4, y1: ly.toFixed(1), y2: ly.toFixed(1), stroke: st.color, 'stroke-dasharray': '5,4' }),
			svg('text', { x: W - 8, y: ty.toFixed(1), 'text-anchor': 'end', 'font-size': '11', fill: st.color }, [ fmt(st.limit, rate(s.limit)) ]));
	});
	chart.series.forEach(function(s) {
		if (!s.points.length) return;
		var st = seriesStyle(s.key);
		var pts = s.points.map(function(p) { return x(p.t).toFixed(1) + ',' + y(p.kbit).toFixed(1); });
		if (st.fill != 'none')
			kids.push(svg('polygon', { points: x(s.points[0].t).toFixed(1) + ',' + y(0) + ' ' + pts.join(' ') + ' ' + x(s.points[s.points.length - 1].t).toFixed(1) + ',' + y(0), fill: st.fill, 'fill-opacity': '0.8' }));
		kids.push(svg('polyline', { 'class': 'meshnode-rate meshnode-rate-' + s.key, points: pts.join(' '), fill: 'none', stroke: st.color, 'stroke-width': '2' }));
	});
	var el = svg('svg', { 'class': 'meshnode-chart', viewBox: '0 0 ' + W + ' ' + H, width: '100%', role: 'img',
		'style': 'max-width:' + W + 'px' }, kids);
	var legend = chart.series.map(function(s) {
		var st = seriesStyle(s.key);
		return E('span', { 'style': 'margin-right:1.5em;white-space:nowrap' }, [
			E('span', { 'style': 'display:inline-block;width:1.5em;height:.25em;vertical-align:middle;margin-right:.4em;background:' + st.color }), st.label ]);
	});
	var source = chart.mode == 'shaping' ? _('Traffic of the mesh through your internet connection, last hour (measured while this page is open).')
		: _('Internet traffic of other mesh users through your node, last hour (measured while this page is open).');
	return E('figure', { 'class': 'meshnode-figure', 'style': 'margin:.5em 0' }, [ el,
		E('figcaption', { 'style': 'font-size:90%;color:#555' }, [ E('div', {}, legend), source ]) ]);
}

/* renderUplinks lists each uplink with its state in colour and words. */
function renderUplinks(E, items) {
	return E('ul', { 'class': 'meshnode-uplinks', 'style': 'list-style:none;padding-left:0;margin:.4em 0 0' }, items.map(function(u) {
		var c = COLORS[u.level] || COLORS.unknown;
		return E('li', { 'class': 'meshnode-uplink', 'data-uplink': u.name, 'data-state': u.state, 'data-level': u.level, 'style': 'margin:.25em 0' }, [
			E('span', { 'style': 'display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.5em;vertical-align:middle;background:' + c[2] }),
			E('strong', {}, u.name), ' ',
			E('span', { 'class': 'meshnode-uplink-word', 'style': 'color:' + c[0] + ';font-weight:bold' }, u.word),
			u.active ? ' ' + _('(in use)') : '',
			u.why ? E('div', { 'class': 'meshnode-uplink-why', 'style': 'margin-left:1.3em;font-size:90%' }, u.why) : '',
			u.hint ? E('div', { 'class': 'meshnode-uplink-hint', 'style': 'margin-left:1.3em;font-size:90%;color:#555' }, u.hint) : ''
		]);
	}));
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
				r.hint ? E('div', { 'class': 'meshnode-hint', 'style': 'color:#555;font-size:90%' }, r.hint) : '',
				r.items && r.items.length ? renderUplinks(E, r.items) : ''
			])
		]);
	});
	var shareRowData = rowById(m.rows, 'share');
	var parts = [ banner, E('div', { 'class': 'table meshnode-rows', 'style': 'width:100%' }, rows) ];
	if (shareRowData && shareRowData.level != 'unknown' && m.chart.series.length)
		parts.push(E('h3', {}, _('Shared bandwidth')), renderChart(E, m.chart));
	if (m.alerts.length)
		parts.push(E('h3', {}, _('Latest LoRa alerts')), E('ul', { 'class': 'meshnode-alerts', 'style': 'list-style:none;padding-left:0' }, m.alerts.map(function(a) {
			var c = a.verified ? COLORS.ok : COLORS.warn;
			return E('li', { 'class': 'meshnode-alert', 'data-verified': a.verified ? '1' : '0', 'style': 'margin:.3em 0' }, [
				E('span', { 'class': 'meshnode-alert-check', 'style': 'display:inline-block;min-width:7em;text-align:center;padding:0 .5em;margin-right:.5em;border-radius:1em;color:#fff;background:' + c[2],
					'title': a.verified ? _('Signed by your network’s operators.') : _('Not signed by your network’s operators: treat it with care.') },
					a.verified ? _('verified') : _('not verified')),
				E('strong', {}, a.time), ' ', a.text, a.sender ? E('span', { 'style': 'color:#555' }, ' ' + fmt(_('(from %s)'), a.sender)) : '' ]);
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
 * again by the agent (set_share) after submission. schedule is the window
 * in force ("HH:MM-HH:MM"), if any: the form sets the limit outside the
 * operator's schedule. */
function renderShareForm(E, share, onSubmit, schedule) {
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
	var note = schedule ? E('p', { 'class': 'meshnode-share-window', 'style': 'color:#555' },
		fmt(_('From %s your operator’s schedule sets another limit; what you set here applies outside that time.'), schedule.replace('-', ' ' + _('to') + ' '))) : '';
	var form = E('form', { 'class': 'meshnode-share-form' }, [ note ].concat(dirs.map(function(d, i) {
		return E('div', { 'style': 'margin:.3em 0' }, [ E('label', { 'style': 'display:inline-block;width:10em' }, d[1]), inputs[i], ' ',
			fmt(_('Mbit/s (from %s to %s)'), rate(d[2].min), rate(d[2].max)) ]);
	})).concat([ msg, btn ]));
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
	sampleOf: sampleOf,
	limitsOf: limitsOf,
	whyPlain: whyPlain,
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
		if (st && st.running !== false) {
			var smp = sampleOf(st, data.share, now);
			if (smp.up != null || smp.down != null || smp.total != null) this.samples.push(smp);
			while (this.samples.length && this.samples[0].t < now - (WINDOW_SECONDS + 60) * 1000) this.samples.shift();
		}
		var m = buildModel({ now: now, status: data.status, share: data.share, lora: data.lora, recent: data.recent, samples: this.samples });
		var self = this;
		var node = renderModel(m, E, { detailsOpen: this.detailsOpen, onToggle: function(open) { self.detailsOpen = open; } });
		this.statusBox.innerHTML = '';
		this.statusBox.appendChild(node);

		/* Redraw the form only when the limit or its bounds changed and the
		 * host is not typing in it. */
		var win = m.limits ? m.limits.window : '';
		var sj = JSON.stringify([ data.share, win ]);
		if (sj != this.shareJSON && !this.shareBox.contains(document.activeElement)) {
			this.shareJSON = sj;
			this.shareBox.innerHTML = '';
			this.shareBox.appendChild(renderShareForm(E, data.share, function(vals) {
				return settle(callSetShare(vals.upload_kbit, vals.download_kbit), CALL_TIMEOUT_MS);
			}, win));
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

/*
 * A small stand-in for LuCI's client runtime, enough to load and run a
 * LuCI JavaScript view in a browser without a router. Written for the
 * tests in tests/luci; the views must not know it exists.
 *
 * What it provides, and how it differs from LuCI (luci-base's luci.js,
 * rpc.js, view handling in ui.js):
 *
 *   L.require(name)     loads /view/<name with dots as slashes>.js for
 *                       "view.*" modules; built-in modules "view", "rpc",
 *                       "poll" come from this file. Like LuCI, the module's
 *                       source is compiled as a function body whose
 *                       'require x' / 'require x as y' directives become
 *                       parameters, and a returned class is instantiated.
 *   view.extend(props)  a class whose constructor runs load() then
 *                       render(data) and puts the result into #view. The
 *                       footer with save/reset buttons is not drawn.
 *   rpc.declare(opts)   returns a function that POSTs
 *                       {object, method, params} to /ubus?scenario=<s> on
 *                       the test server, which answers {result:[code, data]}
 *                       like ubus over HTTP. code != 0 rejects with an
 *                       Error naming the ubus status; no answer within
 *                       L.env.rpctimeout seconds (query ?rpctimeout=, default
 *                       20) rejects with a timeout Error, as LuCI does.
 *                       opts.expect is applied for a single key only.
 *   poll.add(fn, s)     registered; runs every s seconds. The test can also
 *                       run all poll functions at once with
 *                       standin.advance(n, step): n rounds, each moving
 *                       the page's clock (Date.now) forward by the
 *                       interval, or by step seconds when given;
 *                       standin.poll() runs them once on the real clock.
 *   E(tag, attrs, kids) creates an element; function-valued attributes are
 *                       event listeners, kids are nodes, strings or arrays.
 *   _(s), N_(n, s, p)   identity translations.
 *
 * window.standin exposes: ready (Promise of the rendered view), instance
 * (the view object), calls (every rpc call made), rpc(object, method,
 * params) for direct calls, advance(n), poll().
 */
(function() {
	'use strict';

	var query = {};
	location.search.replace(/^\?/, '').split('&').forEach(function(kv) {
		if (!kv) return;
		var i = kv.indexOf('=');
		query[decodeURIComponent(i < 0 ? kv : kv.slice(0, i))] = i < 0 ? '' : decodeURIComponent(kv.slice(i + 1));
	});

	var clockOffset = 0, realNow = Date.now.bind(Date);
	Date.now = function() { return realNow() + clockOffset; };

	var ubusStatus = [ 'OK', 'Invalid command', 'Invalid argument', 'Method not found', 'Object not found',
		'No data', 'Permission denied', 'Request timed out', 'Not supported', 'Unknown error', 'Connection failed' ];

	function E(tag, attrs, kids) {
		if (kids === undefined && (typeof attrs != 'object' || attrs === null || Array.isArray(attrs) || attrs instanceof Node)) {
			kids = attrs;
			attrs = null;
		}
		var el = document.createElement(tag);
		for (var k in (attrs || {})) {
			var v = attrs[k];
			if (v == null) continue;
			if (typeof v == 'function') el.addEventListener(k, v);
			else el.setAttribute(k, typeof v == 'object' ? JSON.stringify(v) : String(v));
		}
		(function add(c) {
			if (c == null || c === '') return;
			if (Array.isArray(c)) c.forEach(add);
			else if (c instanceof Node) el.appendChild(c);
			else el.appendChild(document.createTextNode(String(c)));
		})(kids);
		return el;
	}

	var L = { env: { rpctimeout: query.rpctimeout ? Number(query.rpctimeout) : 20 }, modules: {} };
	var calls = [], polls = [], advancing = false;

	function rpcCall(object, method, params) {
		calls.push({ object: object, method: method, params: params });
		var url = '/ubus?scenario=' + encodeURIComponent(query.scenario || '');
		var req = fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ object: object, method: method, params: params || {} }) })
			.then(function(r) { return r.json(); })
			.then(function(reply) {
				var res = reply && reply.result;
				if (!Array.isArray(res)) throw new Error('RPCError: malformed reply');
				if (res[0] != 0)
					throw new Error('RPCError: call to ' + object + '/' + method + ' failed with ubus code ' + res[0] + ': ' + (ubusStatus[res[0]] || 'Unknown error'));
				return res.length > 1 ? res[1] : null;
			});
		var timeout = new Promise(function(_, reject) {
			setTimeout(function() { reject(new Error('Request timed out after ' + L.env.rpctimeout + ' s')); }, L.env.rpctimeout * 1000);
		});
		return Promise.race([ req, timeout ]);
	}

	L.modules.rpc = {
		declare: function(opts) {
			return function() {
				var params = {}, args = arguments;
				(opts.params || []).forEach(function(name, i) { if (args[i] !== undefined) params[name] = args[i]; });
				return rpcCall(opts.object, opts.method, params).then(function(reply) {
					var keys = opts.expect ? Object.keys(opts.expect) : [];
					if (keys.length == 1 && keys[0] != '') {
						var v = reply ? reply[keys[0]] : undefined;
						reply = v === undefined ? opts.expect[keys[0]] : v;
					}
					return opts.filter ? opts.filter(reply, params) : reply;
				});
			};
		}
	};

	L.modules.poll = {
		add: function(fn, interval) {
			var p = { fn: fn, interval: interval || 5 };
			polls.push(p);
			p.timer = setInterval(function() { if (!p.busy && !advancing) { p.busy = true; Promise.resolve(fn()).finally(function() { p.busy = false; }); } }, p.interval * 1000);
		},
		stop: function() { polls.forEach(function(p) { clearInterval(p.timer); }); }
	};

	var readyResolve, readyReject;
	var ready = new Promise(function(res, rej) { readyResolve = res; readyReject = rej; });

	function View() {}
	View.extend = function(props) {
		var C = function() {
			var self = this;
			var vp = document.getElementById('view');
			vp.textContent = 'Loading view…';
			Promise.resolve(self.load()).then(function(data) { return self.render(data); }).then(function(node) {
				vp.textContent = '';
				vp.appendChild(node);
				readyResolve(self);
			}).catch(function(err) {
				vp.textContent = 'view failed: ' + err;
				readyReject(err);
			});
		};
		C.prototype = Object.create(View.prototype);
		C.prototype.load = function() { return null; };
		for (var k in props) C.prototype[k] = props[k];
		C.prototype.constructor = C;
		return C;
	};
	L.modules.view = View;

	/* compile evaluates module source the way LuCI does: directives at the
	 * top of the file name the modules passed in as parameters. */
	function compile(name, src) {
		var names = [], mods = [], re = /^\s*(?:'use strict'|"use strict");?|^\s*'require\s+([\w.]+)(?:\s+as\s+(\w+))?';?/, m, rest = src;
		while ((m = re.exec(rest)) !== null && m[0].length) {
			if (m[1]) {
				var mod = L.modules[m[1]];
				if (!mod) throw new Error(name + ': stand-in has no module ' + m[1]);
				names.push(m[2] || m[1].replace(/.*\./, ''));
				mods.push(mod);
			}
			rest = rest.slice(m[0].length);
		}
		var fn = new Function(names.join(','), '"use strict";\n' + src + '\n//# sourceURL=' + name + '.js');
		var res = fn.apply(window, mods);
		if (typeof res == 'function') res = new res();
		return res;
	}

	L.require = function(name) {
		var path = '/' + name.replace(/\./g, '/') + '.js';
		return fetch(path).then(function(r) {
			if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
			return r.text();
		}).then(function(src) { return compile(name, src); });
	};

	window.L = L;
	window.E = E;
	window._ = function(s) { return s; };
	window.N_ = function(n, s, p) { return n == 1 ? s : p; };

	window.standin = {
		query: query,
		ready: ready,
		calls: calls,
		rpc: rpcCall,
		instance: null,
		/* poll runs every poll function once now, without moving the
		 * clock: with a live agent behind /ubus, rates come out real. */
		poll: function() {
			advancing = true;
			return Promise.all(polls.map(function(p) { return p.fn(); })).finally(function() { advancing = false; });
		},
		advance: function(n, step) {
			/* The timers pause meanwhile, so every sample is one interval
			 * (or step seconds, like a throttled background tab) apart. */
			var chain = Promise.resolve();
			advancing = true;
			for (var i = 0; i < n; i++)
				chain = chain.then(function() {
					return Promise.all(polls.map(function(p) { clockOffset += (step || p.interval) * 1000; return p.fn(); }));
				});
			return chain.finally(function() { advancing = false; });
		}
	};
	ready.then(function(v) { window.standin.instance = v; window.standin.rendered = true; },
		function(e) { window.standin.failed = String(e); });

	L.require('view.' + (query.view || 'meshnode/status').replace(/\//g, '.')).catch(function(e) {
		window.standin.failed = String(e);
		document.getElementById('view').textContent = 'load failed: ' + e;
	});
})();

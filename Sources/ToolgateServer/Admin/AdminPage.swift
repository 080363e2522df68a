/// The approver's page (DESIGN.md section 6): one static HTML document with its CSS and script inline, nothing
/// fetched from elsewhere (the Content-Security-Policy header forbids it). It holds no data and no secret: the
/// script signs in (`POST /admin/session`), keeps the session secret in `sessionStorage` (scoped to this scheme,
/// host and port, unlike a cookie) and sends it as `X-Toolgate-Admin-Session` on every request. So the page needs
/// JavaScript, and says so without it.
enum AdminPage {
    /// `default-src 'none'`: no external (or any other) resource loads; the one inline script is allowed by nonce.
    static func contentSecurityPolicy(nonce: String) -> String {
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-\(nonce)'; connect-src 'self'; form-action 'none'; "
            + "frame-ancestors 'none'; base-uri 'none'"
    }

    static func document(nonce: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>toolgate approvals</title>
        <style>\(style)</style>
        </head>
        <body>
        <noscript><main class="narrow"><h1>toolgate approvals</h1><p class="error" id="needs-javascript">This page needs JavaScript: it keeps your sign-in in this tab only, never in a cookie. Turn JavaScript on for this page, or use <code>toolgate approvals list|approve|deny</code>.</p></main></noscript>
        <main id="signin" class="narrow" hidden>
        <h1>toolgate approvals</h1>
        <form id="signin-form" class="card">
        <label for="token">Admin token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required>
        <p id="signin-error" class="error" role="alert"></p>
        <button type="submit" class="approve">Sign in</button>
        </form>
        </main>
        <div id="app" hidden>
        <header><h1>toolgate approvals</h1><button type="button" id="signout" class="link">Sign out</button></header>
        <main>
        <p id="notice" class="notice" role="status"></p>
        <p id="summary" class="meta"></p>
        <div id="list"></div>
        <nav id="pager" hidden><button type="button" id="first-page" class="link">First page</button> <button type="button" id="next-page" class="link">Next 50</button></nav>
        <p class="footnote">Oldest first, 50 at a time; refreshes every 2 seconds. Highlighted marks stand for characters that would be invisible or change how the text around them looks (<span class="esc">\\u202e</span>), and for long runs of spaces. Arguments are shown here only; toolgate never logs them.</p>
        </main>
        </div>
        <script nonce="\(nonce)">\(script)</script>
        </body>
        </html>
        """
    }

    static let style = """
        :root { color-scheme: light dark; --ok: #1a7f37; --no: #cf222e; --muted: #6e7781; }
        * { box-sizing: border-box; }
        [hidden] { display: none !important; }
        body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
        header { display: flex; justify-content: space-between; align-items: center; padding: .75rem 1rem; border-bottom: 1px solid #8884; }
        h1 { font-size: 1.15rem; margin: 0; }
        main { max-width: 52rem; margin: 0 auto; padding: 1rem; }
        main.narrow { max-width: 24rem; padding-top: 15vh; }
        .card { border: 1px solid #8886; border-radius: .6rem; padding: 1rem; margin: 0 0 1rem; }
        .card h2 { font-size: 1.05rem; margin: 0 0 .5rem; overflow-wrap: anywhere; word-break: break-all; }
        .grant, .meta, .footnote, .empty { color: var(--muted); }
        .meta { font-size: .85rem; overflow-wrap: anywhere; }
        pre { background: #8881; padding: .6rem; border-radius: .4rem; font-size: .85rem; white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-all; }
        .esc { background: #ffd33d; color: #1f2328; border: 1px solid #bf8700; border-radius: .25rem; padding: 0 .15rem; font-weight: 600; }
        label { display: block; margin-bottom: .4rem; }
        input[type=password] { width: 100%; padding: .6rem; font-size: 1rem; margin-bottom: .8rem; }
        .actions { display: flex; gap: .6rem; }
        button { font: inherit; padding: .6rem 1.2rem; border-radius: .4rem; border: 1px solid transparent; cursor: pointer; min-width: 7rem; }
        button.approve { background: var(--ok); color: #fff; }
        button.deny { background: var(--no); color: #fff; }
        button.link { background: none; color: inherit; text-decoration: underline; min-width: 0; padding: .2rem; }
        .state.approved { color: var(--ok); font-weight: 600; }
        .state.denied { color: var(--no); font-weight: 600; }
        .notice { min-height: 1.4em; font-weight: 600; overflow-wrap: anywhere; }
        .error { color: var(--no); min-height: 1.2em; }
        @media (max-width: 30rem) { .actions button { flex: 1; } }
        """

    /// Sign-in, the list (a page of 50, refreshed every 2 s), decisions and sign-out, all with `fetch` and the
    /// session header; a 401 forgets the secret and shows the sign-in form again. Everything from the server is
    /// put in the document as text (`textContent`), never as markup.
    static let script = """
        (function () {
          'use strict';
          var KEY = 'toolgate-admin-session', HEADER = 'X-Toolgate-Admin-Session';
          function $(id) { return document.getElementById(id); }
          var signin = $('signin'), app = $('app'), list = $('list'), notice = $('notice'), summary = $('summary');
          var pages = [null], timer = null;
          function secret() { try { return sessionStorage.getItem(KEY); } catch (e) { return null; } }
          function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
          function segments(parent, segs, fallback) {
            if (!Array.isArray(segs)) { parent.appendChild(document.createTextNode(fallback)); return parent; }
            segs.forEach(function (s) {
              if (typeof s === 'string') parent.appendChild(document.createTextNode(s));
              else if (s && typeof s.escape === 'string') parent.appendChild(el('span', 'esc', s.escape));
            });
            return parent;
          }
          function waiting(iso) {
            if (!iso) return 'The policy no longer asks for approval of this tool.';
            if (Date.parse(iso) > Date.now()) return 'The agent is waiting: ' + left(iso) + ' left.';
            return 'The agent stopped waiting ' + left(new Date(2 * Date.now() - Date.parse(iso)).toISOString()) +
              ' ago: if approved, its identical retry proceeds.';
          }
          function left(iso) {
            var s = Math.max(0, Math.floor((Date.parse(iso) - Date.now()) / 1000));
            if (s < 60) return s + ' s'; if (s < 3600) return Math.floor(s / 60) + ' min';
            return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min';
          }
          function showSignIn(message) {
            try { sessionStorage.removeItem(KEY); } catch (e) {}
            if (timer) { clearInterval(timer); timer = null; }
            list.textContent = ''; notice.textContent = ''; summary.textContent = '';
            app.hidden = true; signin.hidden = false;
            $('signin-error').textContent = message || '';
            $('token').focus();
          }
          function showApp() {
            signin.hidden = true; app.hidden = false; pages = [null];
            refresh();
            if (!timer) timer = setInterval(refresh, 2000);
          }
          function api(method, path, body) {
            var headers = { 'Accept': 'application/json' };
            headers[HEADER] = secret() || '';
            if (body !== undefined) headers['Content-Type'] = 'application/json';
            return fetch(path, { method: method, headers: headers, credentials: 'omit', cache: 'no-store',
                                 body: body === undefined ? undefined : JSON.stringify(body) })
              .then(function (r) {
                if (r.status === 401) { showSignIn('Signed out: sign in again.'); throw 0; }
                return r.status === 204 ? [r, {}] : r.json().then(function (j) { return [r, j]; });
              });
          }
          function card(a) {
            var d = a.display || {};
            var c = el('article', 'card'); c.setAttribute('data-id', a.id);
            var h = el('h2');
            h.appendChild(segments(el('span', 'tool'), d.tool, a.tool));
            if (a.server) h.appendChild(el('span', 'server', ' on ' + a.server));
            h.appendChild(document.createTextNode(' '));
            var g = el('span', 'grant', 'for '); segments(g, d.grant, a.grant); h.appendChild(g);
            c.appendChild(h);
            c.appendChild(segments(el('pre'), d.arguments, JSON.stringify(a.arguments, null, 2)));
            if (a.state === 'pending') c.appendChild(el('p', 'wait', waiting(a.agentWaitsUntil)));
            var m = el('p', 'meta', 'approval expires in ' + left(a.expiresAt) + ' · '); m.appendChild(el('code', null, a.id)); c.appendChild(m);
            if (a.state === 'pending') {
              var f = el('div', 'actions');
              [['approve', 'Approve'], ['deny', 'Deny']].forEach(function (x) {
                var b = el('button', x[0], x[1]); b.type = 'button'; b.name = 'decision'; b.value = x[0];
                f.appendChild(b);
              });
              c.appendChild(f);
            } else {
              c.appendChild(el('p', 'state ' + a.state, a.state === 'approved' ? 'Approved: waiting for the call to use it' : 'Denied'));
            }
            return c;
          }
          function render(body) {
            var approvals = body.approvals || [], first = pages.length - 1;
            if (!approvals.length && first > 0) { pages = [null]; refresh(); return; }
            list.textContent = '';
            if (!approvals.length) list.appendChild(el('p', 'empty', 'No approvals are waiting.'));
            approvals.forEach(function (a) { list.appendChild(card(a)); });
            var total = typeof body.total === 'number' ? body.total : approvals.length;
            var from = first * 50 + 1;
            summary.textContent = approvals.length ? 'Showing ' + from + '\\u2013' + (from + approvals.length - 1) + ' of ' + total + ', oldest first.' : '';
            $('next-page').hidden = !body.next; $('first-page').hidden = first === 0;
            $('next-page').setAttribute('data-next', body.next || '');
            $('pager').hidden = !body.next && first === 0;
          }
          function refresh() {
            if (!secret()) return;
            var after = pages[pages.length - 1];
            api('GET', '/admin/approvals' + (after ? '?after=' + encodeURIComponent(after) : ''))
              .then(function (p) { if (p[0].ok) render(p[1]); else notice.textContent = p[1].error || ('HTTP ' + p[0].status); })
              .catch(function () {});
          }
          function decide(id, decision) {
            api('POST', '/admin/approvals/' + encodeURIComponent(id), { decision: decision })
              .then(function (p) {
                var a = p[1].approval;
                notice.textContent = p[0].ok && a ? a.tool + ' for ' + a.grant + ': ' + a.state : (p[1].error || 'not decided');
                refresh();
              })
              .catch(function (e) { if (e !== 0) notice.textContent = 'could not reach toolgate'; });
          }
          $('signin-form').addEventListener('submit', function (ev) {
            ev.preventDefault();
            var field = $('token'), error = $('signin-error');
            error.textContent = '';
            fetch('/admin/session', { method: 'POST', credentials: 'omit', cache: 'no-store',
                                      headers: { 'Accept': 'application/json', 'Content-Type': 'application/json' },
                                      body: JSON.stringify({ token: field.value }) })
              .then(function (r) { return r.json().then(function (j) { return [r, j]; }); })
              .then(function (p) {
                if (p[0].ok && p[1].session) {
                  field.value = '';
                  sessionStorage.setItem(KEY, p[1].session);
                  showApp();
                } else if (p[0].status === 429) {
                  error.textContent = 'Too many failed sign-ins: try again in ' + (p[0].headers.get('Retry-After') || 'a few') + ' s.';
                } else if (p[0].status === 401) {
                  error.textContent = 'That is not the admin token.';
                } else {
                  error.textContent = p[1].error || ('HTTP ' + p[0].status);
                }
              })
              .catch(function () { error.textContent = 'could not reach toolgate'; });
          });
          $('signout').addEventListener('click', function () {
            api('DELETE', '/admin/session').then(function () { showSignIn('Signed out.'); }, function () { showSignIn('Signed out.'); });
          });
          $('next-page').addEventListener('click', function () {
            var next = this.getAttribute('data-next'); if (next) { pages.push(next); refresh(); }
          });
          $('first-page').addEventListener('click', function () { pages = [null]; refresh(); });
          list.addEventListener('click', function (ev) {
            var b = ev.target.closest('button[name=decision]');
            if (!b) return;
            decide(b.closest('article').getAttribute('data-id'), b.value);
          });
          if (secret()) showApp(); else showSignIn('');
        })();
        """
}

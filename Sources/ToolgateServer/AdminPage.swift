import ToolgateCore

/// The approver's page (DESIGN.md section 6): HTML with its CSS and script inline, nothing fetched from elsewhere
/// (the Content-Security-Policy header forbids it). Rendered on the server, so it works with plain forms; the script
/// only refreshes the list and sends decisions with `fetch`. Pure functions: the routes add headers and cookies.
enum AdminPage {
    /// `default-src 'none'`: no external (or any other) resource loads; the one inline script is allowed by nonce.
    static func contentSecurityPolicy(nonce: String) -> String {
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-\(nonce)'; connect-src 'self'; form-action 'self'; "
            + "frame-ancestors 'none'; base-uri 'none'"
    }

    static func login(error: String?) -> String {
        document(
            title: "toolgate approvals: sign in", nonce: nil, refresh: false,
            body: """
                <main class="narrow">
                <h1>toolgate approvals</h1>
                <form method="post" action="/admin/login" class="card">
                <label for="token">Admin token</label>
                <input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
                \(error.map { "<p class=\"error\" role=\"alert\">\(escape($0))</p>" } ?? "")
                <button type="submit" class="approve">Sign in</button>
                </form>
                </main>
                """)
    }

    /// The list, as the server sees it now; `notice` says what was just decided.
    static func approvals(_ approvals: [Approval], nowMillis: Int64, csrf: String, nonce: String, notice: String?) -> String {
        let cards = approvals.isEmpty ? "<p class=\"empty\">No approvals are waiting.</p>" : approvals.map { card($0, nowMillis: nowMillis, csrf: csrf) }.joined(separator: "\n")
        return document(
            title: "toolgate approvals", nonce: nonce, refresh: true,
            body: """
                <header><h1>toolgate approvals</h1>
                <form method="post" action="/admin/logout"><input type="hidden" name="csrf" value="\(csrf)"><button type="submit" class="link">Sign out</button></form>
                </header>
                <main>
                <p id="notice" class="notice" role="status">\(notice.map(escape) ?? "")</p>
                <div id="list" data-csrf="\(csrf)">
                \(cards)
                </div>
                <p class="footnote">Refreshes every 2 seconds. Arguments are shown here only; toolgate never logs them.</p>
                </main>
                <script nonce="\(nonce)">\(script)</script>
                """)
    }

    static func card(_ approval: Approval, nowMillis: Int64, csrf: String) -> String {
        let arguments = (try? JSONParser.parse(approval.arguments)).map { pretty($0) } ?? approval.arguments
        let buttons =
            approval.state == .pending
            ? """
            <form method="post" action="/admin/decide" class="actions">
            <input type="hidden" name="id" value="\(escape(approval.id))"><input type="hidden" name="csrf" value="\(csrf)">
            <button type="submit" name="decision" value="approve" class="approve">Approve</button>
            <button type="submit" name="decision" value="deny" class="deny">Deny</button>
            </form>
            """
            : "<p class=\"state \(approval.state.rawValue)\">\(approval.state == .approved ? "Approved: waiting for the call to use it" : "Denied")</p>"
        return """
            <article class="card" data-id="\(escape(approval.id))">
            <h2><span class="tool">\(escape(approval.tool))</span> <span class="grant">for \(escape(approval.grant))</span></h2>
            <pre>\(escape(arguments))</pre>
            <p class="meta">expires in \(escape(remaining(approval.expiresAtMillis - nowMillis))) · <code>\(escape(approval.id))</code></p>
            \(buttons)
            </article>
            """
    }

    /// `12 min`, `45 s`, `2 h 5 min`.
    static func remaining(_ millis: Int64) -> String {
        let seconds = max(0, millis / 1_000)
        if seconds < 60 { return "\(seconds) s" }
        if seconds < 3_600 { return "\(seconds / 60) min" }
        return "\(seconds / 3_600) h \(seconds % 3_600 / 60) min"
    }

    /// Two-space indented JSON, keys in their (canonical) order.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .array(let elements) where !elements.isEmpty:
            return "[\n" + elements.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let object) where object.count > 0:
            return "{\n"
                + object.members.map { inner + JSONWriter.string(.string($0.key)) + ": " + pretty($0.value, indent: inner) }
                .joined(separator: ",\n") + "\n" + indent + "}"
        default:
            return JSONWriter.string(value)
        }
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func document(title: String, nonce: String?, refresh: Bool, body: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        \(refresh ? "<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>" : "")
        <style>\(style)</style>
        </head>
        <body>
        \(body)
        </body>
        </html>
        """
    }

    static let style = """
        :root { color-scheme: light dark; --ok: #1a7f37; --no: #cf222e; --muted: #6e7781; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
        header { display: flex; justify-content: space-between; align-items: center; padding: .75rem 1rem; border-bottom: 1px solid #8884; }
        h1 { font-size: 1.15rem; margin: 0; }
        main { max-width: 52rem; margin: 0 auto; padding: 1rem; }
        main.narrow { max-width: 24rem; padding-top: 15vh; }
        .card { border: 1px solid #8886; border-radius: .6rem; padding: 1rem; margin: 0 0 1rem; }
        .card h2 { font-size: 1.05rem; margin: 0 0 .5rem; overflow-wrap: anywhere; }
        .grant, .meta, .footnote, .empty { color: var(--muted); }
        .meta { font-size: .85rem; overflow-wrap: anywhere; }
        pre { background: #8881; padding: .6rem; border-radius: .4rem; overflow: auto; font-size: .85rem; max-height: 60vh; }
        label { display: block; margin-bottom: .4rem; }
        input[type=password] { width: 100%; padding: .6rem; font-size: 1rem; margin-bottom: .8rem; }
        .actions { display: flex; gap: .6rem; }
        button { font: inherit; padding: .6rem 1.2rem; border-radius: .4rem; border: 1px solid transparent; cursor: pointer; min-width: 7rem; }
        button.approve { background: var(--ok); color: #fff; }
        button.deny { background: var(--no); color: #fff; }
        button.link { background: none; color: inherit; text-decoration: underline; min-width: 0; padding: .2rem; }
        .state.approved { color: var(--ok); font-weight: 600; }
        .state.denied { color: var(--no); font-weight: 600; }
        .notice { min-height: 1.4em; font-weight: 600; }
        .error { color: var(--no); }
        @media (max-width: 30rem) { .actions button { flex: 1; } }
        """

    /// Refreshes the list every 2 s from `/admin/approvals`, and sends decisions with `fetch` (the CSRF value in a
    /// header); on any failure the forms still work as plain POSTs.
    static let script = """
        (function () {
          var list = document.getElementById('list'), notice = document.getElementById('notice');
          var csrf = list.getAttribute('data-csrf');
          function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
          function left(iso) {
            var s = Math.max(0, Math.floor((Date.parse(iso) - Date.now()) / 1000));
            if (s < 60) return s + ' s'; if (s < 3600) return Math.floor(s / 60) + ' min';
            return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min';
          }
          function card(a) {
            var c = el('article', 'card'); c.setAttribute('data-id', a.id);
            var h = el('h2'); h.appendChild(el('span', 'tool', a.tool)); h.appendChild(document.createTextNode(' ')); h.appendChild(el('span', 'grant', 'for ' + a.grant));
            c.appendChild(h); c.appendChild(el('pre', null, JSON.stringify(a.arguments, null, 2)));
            var m = el('p', 'meta', 'expires in ' + left(a.expiresAt) + ' · '); m.appendChild(el('code', null, a.id)); c.appendChild(m);
            if (a.state === 'pending') {
              var f = el('form', 'actions'); f.method = 'post'; f.action = '/admin/decide';
              [['approve', 'Approve'], ['deny', 'Deny']].forEach(function (d) {
                var b = el('button', d[0], d[1]); b.type = 'submit'; b.name = 'decision'; b.value = d[0];
                f.appendChild(b);
              });
              c.appendChild(f);
            } else {
              c.appendChild(el('p', 'state ' + a.state, a.state === 'approved' ? 'Approved: waiting for the call to use it' : 'Denied'));
            }
            return c;
          }
          function render(approvals) {
            list.textContent = '';
            if (!approvals.length) { list.appendChild(el('p', 'empty', 'No approvals are waiting.')); return; }
            approvals.forEach(function (a) { list.appendChild(card(a)); });
          }
          function refresh() {
            fetch('/admin/approvals', { headers: { 'Accept': 'application/json' }, credentials: 'same-origin' })
              .then(function (r) { if (r.status === 401) { location.href = '/admin/'; throw 0; } return r.json(); })
              .then(function (body) { render(body.approvals || []); })
              .catch(function () {});
          }
          function decide(id, decision) {
            var body = new URLSearchParams(); body.set('id', id); body.set('decision', decision); body.set('csrf', csrf);
            fetch('/admin/decide', { method: 'POST', body: body, credentials: 'same-origin',
                                     headers: { 'Accept': 'application/json', 'X-Toolgate-CSRF': csrf } })
              .then(function (r) { return r.json().then(function (j) { return [r, j]; }); })
              .then(function (p) {
                var a = p[1].approval;
                notice.textContent = p[0].ok && a ? a.tool + ' for ' + a.grant + ': ' + a.state : (p[1].error || 'not decided');
                refresh();
              })
              .catch(function () { notice.textContent = 'could not reach toolgate'; });
          }
          list.addEventListener('click', function (ev) {
            var b = ev.target.closest('button[name=decision]');
            if (!b) return;
            ev.preventDefault();
            var card = b.closest('article');
            decide(card.getAttribute('data-id'), b.value);
          });
          setInterval(refresh, 2000);
        })();
        """
}

import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ToolgateCore

/// `/admin/approvals` (DESIGN.md section 6): list approvals, decide one. Only with `--admin-token-file`; every
/// request presents the token (401 otherwise). A decision wakes the calls waiting on this sidecar at once; other
/// sidecars see it at their next poll.
struct AdminAPI: Sendable {
    let access: AdminAccess
    let gate: ApprovalGate
    let logger: Logger

    func list(_ request: Request, cookieAllowed: Bool = false) async -> Response {
        guard access.isAuthorized(request.headers, allowCookie: cookieAllowed) else { return Self.unauthorized() }
        do {
            let approvals = try await gate.store.list()
            return Self.json(.ok, ["approvals": .array(approvals.map(Self.json(_:)))])
        } catch {
            return Self.json(.serviceUnavailable, ["error": .string("the approval store is unavailable: \(error.message)")])
        }
    }

    /// `POST /admin/approvals/{id}` with `{"decision": "approve" | "deny"}`.
    func decide(_ request: Request, id: String, cookieAllowed: Bool = false) async -> Response {
        guard access.isAuthorized(request.headers, allowCookie: cookieAllowed) else { return Self.unauthorized() }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 64 * 1024)
        } catch {
            return Self.json(.contentTooLarge, ["error": "the body must be a small JSON object: {\"decision\": \"approve\"}"])
        }
        guard let value = try? JSONParser.parse(Array(body.readableBytesView)), let decision = value["decision"]?.stringValue,
            decision.isExactly("approve") || decision.isExactly("deny")
        else {
            return Self.json(.badRequest, ["error": "expected {\"decision\": \"approve\"} or {\"decision\": \"deny\"}"])
        }
        return await decide(id: id, approve: decision.isExactly("approve"))
    }

    func decide(id: String, approve: Bool) async -> Response {
        let outcome: ApprovalDecisionOutcome
        do {
            outcome = try await gate.store.decide(id: id, approve: approve)
        } catch {
            return Self.json(.serviceUnavailable, ["error": .string("the approval store is unavailable: \(error.message)")])
        }
        switch outcome {
        case .decided(let approval):
            gate.decided(id: approval.id, state: approval.state)
            logger.notice(
                "approval decided",
                metadata: ["approvalId": "\(approval.id)", "state": "\(approval.state.rawValue)", "grant": "\(approval.grant)", "tool": "\(approval.tool)"])
            return Self.json(.ok, ["approval": Self.json(approval)])
        case .alreadyDecided(let approval):
            return Self.json(
                .conflict, ["error": .string("approval \(approval.id) was already \(approval.state.rawValue)"), "approval": Self.json(approval)])
        case .notFound:
            return Self.json(.notFound, ["error": .string("no pending approval has id \(id.prefix(64)): it expired, was used, or never existed")])
        }
    }

    static func unauthorized() -> Response {
        var response = json(.unauthorized, ["error": "missing or wrong admin token: send Authorization: Bearer <admin token>"])
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(value))))
    }

    static func json(_ approval: Approval) -> JSONValue {
        [
            "id": .string(approval.id), "state": .string(approval.state.rawValue), "grant": .string(approval.grant),
            "tool": .string(approval.tool), "arguments": (try? JSONParser.parse(approval.arguments)) ?? .string(approval.arguments),
            "policySha256": .string(approval.policySHA256), "createdAt": .string(timestamp(approval.createdAtMillis)),
            "expiresAt": .string(timestamp(approval.expiresAtMillis)),
        ]
    }

    /// RFC 3339, UTC, milliseconds.
    static func timestamp(_ millis: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1_000))
    }
}

/// The approver's page and its form endpoints: `/admin/` (sign-in form, or the list), `/admin/login`,
/// `/admin/logout`, `/admin/decide`. Signed in by a cookie (HttpOnly, SameSite=Strict, path /admin); every POST
/// that changes something also carries the CSRF value (form field or `X-Toolgate-CSRF`) and, when the browser sends
/// one, an `Origin` of this very host.
struct AdminPageRoutes: Sendable {
    let api: AdminAPI
    var access: AdminAccess { api.access }

    /// Twelve hours: a working day's approvals without signing in again.
    static let sessionSeconds = 12 * 3_600

    func page(_ request: Request) async -> Response {
        guard access.isAuthorized(request.headers, allowCookie: true) else {
            return html(.ok, AdminPage.login(error: nil), nonce: nil)
        }
        let approvals: [Approval]
        do {
            approvals = try await api.gate.store.list()
        } catch {
            return html(.serviceUnavailable, AdminPage.login(error: "the approval store is unavailable: \(error.message)"), nonce: nil)
        }
        var notice: String?
        if let id = request.uri.queryParameters["decided"].map(String.init), let state = request.uri.queryParameters["state"] {
            notice = "\(id.prefix(64)): \(state.prefix(16))"
        }
        let nonce = Self.nonce()
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        return html(.ok, AdminPage.approvals(approvals, nowMillis: now, csrf: access.csrfValue, nonce: nonce, notice: notice), nonce: nonce)
    }

    struct LoginForm: Decodable { let token: String }
    struct DecideForm: Decodable {
        let id: String
        let decision: String
        let csrf: String?
    }
    struct LogoutForm: Decodable { let csrf: String? }

    func login(_ request: Request) async -> Response {
        guard let form: LoginForm = await Self.form(request), access.accepts(form.token.trimmingWhitespace) else {
            api.logger.warning("admin sign-in refused")
            return html(.unauthorized, AdminPage.login(error: "That is not the admin token."), nonce: nil)
        }
        var response = Self.redirect("/admin/")
        response.headers[.setCookie] =
            "\(AdminAccess.cookieName)=\(access.sessionValue); Path=/admin; HttpOnly; SameSite=Strict; Max-Age=\(Self.sessionSeconds)"
        return response
    }

    func logout(_ request: Request) async -> Response {
        let form: LogoutForm? = await Self.form(request)
        guard sameOrigin(request), AdminAccess.matches(form?.csrf ?? "", access.csrfValue) else { return forbidden() }
        var response = Self.redirect("/admin/")
        response.headers[.setCookie] = "\(AdminAccess.cookieName)=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0"
        return response
    }

    func decide(_ request: Request) async -> Response {
        guard access.isAuthorized(request.headers, allowCookie: true) else { return AdminAPI.unauthorized() }
        guard let form: DecideForm = await Self.form(request) else {
            return AdminAPI.json(.badRequest, ["error": "expected the form fields id, decision and csrf"])
        }
        let csrf = request.headers[Self.csrfHeader] ?? form.csrf ?? ""
        guard sameOrigin(request), AdminAccess.matches(csrf, access.csrfValue) else { return forbidden() }
        guard form.decision.isExactly("approve") || form.decision.isExactly("deny") else {
            return AdminAPI.json(.badRequest, ["error": "decision must be approve or deny"])
        }
        let response = await api.decide(id: form.id, approve: form.decision.isExactly("approve"))
        if (request.headers[.accept] ?? "").contains("application/json") { return response }
        // A plain form: back to the list, saying what happened.
        let state = response.status == .ok ? (form.decision.isExactly("approve") ? "approved" : "denied") : "not decided (\(response.status.code))"
        let query = "decided=\(Self.queryEscaped(form.id))&state=\(Self.queryEscaped(state))"
        return Self.redirect("/admin/?" + query)
    }

    static let csrfHeader = HTTPField.Name("X-Toolgate-CSRF")!

    /// A browser's `Origin`, when sent, must name this host: another site's form never reaches a decision. The page
    /// is served with `Referrer-Policy: same-origin`, under which browsers send the real origin on the page's own form
    /// posts; `null` (what a cross-site or sandboxed form sends) is refused.
    private func sameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        guard let host = request.head.authority, let schemeEnd = origin.range(of: "://") else { return false }
        return origin[schemeEnd.upperBound...].lowercased().isExactly(host.lowercased())
    }

    private func forbidden() -> Response {
        AdminAPI.json(.forbidden, ["error": "this request did not come from the approvals page (CSRF check failed): reload the page"])
    }

    private func html(_ status: HTTPResponse.Status, _ text: String, nonce: String?) -> Response {
        Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                .contentSecurityPolicy: AdminPage.contentSecurityPolicy(nonce: nonce ?? Self.nonce()),
                HTTPField.Name("X-Frame-Options")!: "DENY", HTTPField.Name("Referrer-Policy")!: "same-origin",
                HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    static func form<T: Decodable>(_ request: Request) async -> T? {
        guard let buffer = try? await request.body.collect(upTo: 64 * 1024) else { return nil }
        return try? URLEncodedFormDecoder().decode(T.self, from: String(buffer: buffer))
    }

    static func nonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    static func queryEscaped(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
    }
}

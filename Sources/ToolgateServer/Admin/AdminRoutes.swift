import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ToolgateCore

/// Everything under `/admin` (DESIGN.md section 6), on `/mcp`'s listener or on `--admin-listen`'s own: the page
/// (`GET /admin/`), signing in and out (`POST`/`DELETE /admin/session`), the list and the decisions
/// (`/admin/approvals…`). Every request passes the listener's Host and Origin guard, as `/mcp`'s do; and a request
/// that carries an `Origin` must come from this very origin (or one `--allowed-origin` lists): the loopback
/// allowance of `/mcp` (any port) is exactly what an agent's page on another port would use.
struct AdminRoutes: Sendable {
    let api: AdminAPI
    let originGuard: RequestOriginGuard

    init(api: AdminAPI, listenHost: String, configuration: ServerConfiguration) {
        self.api = api
        originGuard = RequestOriginGuard(
            boundToLoopback: RequestOriginGuard.isLoopback(listenHost: listenHost), allowedHosts: configuration.allowedHosts,
            allowedOrigins: configuration.allowedOrigins)
    }

    func add(to router: Router<ProxyRequestContext>) {
        router.get("/admin/") { request, _ in
            if let refusal = refusal(request) { return refusal }
            return page()
        }
        router.post("/admin/session") { request, context in
            if let refusal = refusal(request) { return refusal }
            return await api.signIn(request, clientAddress: context.clientAddress)
        }
        router.delete("/admin/session") { request, context in
            if let refusal = refusal(request) { return refusal }
            return await api.signOut(request, clientAddress: context.clientAddress)
        }
        router.get("/admin/approvals") { request, context in
            if let refusal = refusal(request) { return refusal }
            return await api.list(request, clientAddress: context.clientAddress)
        }
        router.post("/admin/approvals/:id") { request, context in
            if let refusal = refusal(request) { return refusal }
            let raw = context.parameters.get("id") ?? ""
            return await api.decide(request, id: raw.removingPercentEncoding ?? raw, clientAddress: context.clientAddress)
        }
    }

    /// Nil when the request may proceed.
    func refusal(_ request: Request) -> Response? {
        let origin = request.headers[.origin]
        if let rejection = originGuard.rejection(host: request.head.authority, origin: origin) {
            api.logger.warning("refused an admin request", metadata: ["reason": "\(rejection)"])
            switch rejection {
            case .badAuthority(let why): return AdminAPI.json(.badRequest, ["error": .string(why)])
            case .forbidden(let why): return AdminAPI.json(.forbidden, ["error": .string(why)])
            }
        }
        if let origin, !isOwnOrigin(origin, authority: request.head.authority) {
            api.logger.warning("refused an admin request from another origin", metadata: ["origin": "\(origin.prefix(200).debugDescription)"])
            return AdminAPI.json(.forbidden, ["error": .string("Origin \"\(origin.prefix(200))\" is not this admin page's origin")])
        }
        return nil
    }

    private func isOwnOrigin(_ origin: String, authority: String?) -> Bool {
        let normalized = RequestOriginGuard.normalizedOrigin(origin)
        if originGuard.allowedOrigins.contains(normalized) { return true }
        guard let authority = authority?.lowercased() else { return false }
        return normalized.isExactly("http://" + authority) || normalized.isExactly("https://" + authority)
    }

    private func page() -> Response {
        let nonce = Self.nonce()
        return Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                .contentSecurityPolicy: AdminPage.contentSecurityPolicy(nonce: nonce),
                HTTPField.Name("X-Frame-Options")!: "DENY", HTTPField.Name("Referrer-Policy")!: "no-referrer",
                HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                HTTPField.Name("Cross-Origin-Opener-Policy")!: "same-origin",
                HTTPField.Name("Cross-Origin-Resource-Policy")!: "same-origin",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(string: AdminPage.document(nonce: nonce))))
    }

    static func nonce() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }.hexString
    }
}

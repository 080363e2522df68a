import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ToolgateCore

/// `/admin/approvals` and `/admin/session` (DESIGN.md section 6): list approvals a page at a time, decide one, sign
/// the page in and out. Only with `--admin-token-file`; every request but signing in presents the token or a live
/// sign-in's secret (401 otherwise). A decision wakes the calls waiting on this sidecar at once; other sidecars see
/// it at their next poll.
struct AdminAPI: Sendable {
    let access: AdminAccess
    let gate: ApprovalGate
    /// The policy in force says how long a call waits for its human (`approval.wait`), which the page shows beside
    /// how long the approval itself lives: an agent that stopped waiting needs an identical retry to use it.
    let policy: PolicyState
    let logger: Logger
    /// A guessing agent fails many sign-ins; the log says so once a second.
    let signInFailureLog = LogThrottle()

    /// `GET /admin/approvals[?after=CURSOR]`: `{"approvals": [...], "next": CURSOR|null, "total": N}`, oldest first,
    /// `ApprovalListPage.size` at a time.
    func list(_ request: Request, clientAddress: String) async -> Response {
        if case .refusal(let response) = authorize(request, clientAddress: clientAddress) { return response }
        let approvals: [Approval]
        do {
            approvals = try await gate.store.list()
        } catch {
            return Self.json(.serviceUnavailable, ["error": .string("the approval store is unavailable: \(error.message)")])
        }
        let page: ApprovalListPage
        do {
            page = try ApprovalListPage(approvals, after: request.uri.queryParameters["after"].map(String.init))
        } catch {
            return Self.json(.badRequest, ["error": .string(error.description)])
        }
        return Self.json(
            .ok,
            [
                "approvals": .array(page.approvals.map(shown(_:))), "next": page.next.map(JSONValue.string) ?? .null,
                "total": .number(JSONNumber(page.total)),
            ])
    }

    /// `POST /admin/approvals/{id}` with `{"decision": "approve" | "deny"}`.
    func decide(_ request: Request, id: String, clientAddress: String) async -> Response {
        if case .refusal(let response) = authorize(request, clientAddress: clientAddress) { return response }
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
        let outcome: ApprovalDecisionOutcome
        do {
            outcome = try await gate.store.decide(id: id, approve: decision.isExactly("approve"))
        } catch {
            return Self.json(.serviceUnavailable, ["error": .string("the approval store is unavailable: \(error.message)")])
        }
        switch outcome {
        case .decided(let approval):
            gate.decided(id: approval.id, state: approval.state)
            logger.notice(
                "approval decided",
                metadata: [
                    "approvalId": "\(approval.id)", "state": "\(approval.state.rawValue)",
                    "grant": "\(ArgumentDisplay.plain(ArgumentDisplay.text(approval.grant)))",
                    "tool": "\(ArgumentDisplay.plain(ArgumentDisplay.text(approval.tool)))",
                ])
            return Self.json(.ok, ["approval": shown(approval)])
        case .alreadyDecided(let approval):
            return Self.json(
                .conflict, ["error": .string("approval \(approval.id) was already \(approval.state.rawValue)"), "approval": shown(approval)])
        case .notFound:
            return Self.json(
                .notFound,
                ["error": .string("no pending approval has id \(ArgumentDisplay.plain(ArgumentDisplay.text(String(id.prefix(64))))): it expired, was used, or never existed")])
        }
    }

    /// `POST /admin/session` with `{"token": "…"}`: `{"session": SECRET, …}` for the page to send as
    /// `X-Toolgate-Admin-Session`. Wrong tokens are counted per client address; past the throttle, 429 with
    /// `Retry-After`, the token unread.
    func signIn(_ request: Request, clientAddress: String) async -> Response {
        let token: String?
        if let body = try? await request.body.collect(upTo: 16 * 1024), let value = try? JSONParser.parse(Array(body.readableBytesView)) {
            token = value["token"]?.stringValue
        } else {
            token = nil
        }
        guard let token else { return Self.json(.badRequest, ["error": "expected {\"token\": \"<admin token>\"}"]) }
        switch access.sessions.signIn(address: clientAddress, check: { access.accepts(token.trimmingWhitespace) }) {
        case .signedIn(let secret):
            logger.notice("admin signed in", metadata: ["client": "\(clientAddress)"])
            let limits = access.sessions.limits
            return Self.json(
                .ok,
                [
                    "session": .string(secret), "header": .string(AdminAccess.sessionHeader.rawName),
                    "idleTimeoutSeconds": .number(JSONNumber(Int(limits.idleMicros / 1_000_000))),
                    "maxAgeSeconds": .number(JSONNumber(Int(limits.absoluteMicros / 1_000_000))),
                ])
        case .wrongToken:
            // Never the token: only that one was wrong, and from where.
            if let suppressed = signInFailureLog.admit() {
                logger.warning(
                    "admin sign-in refused: wrong token", metadata: ["client": "\(clientAddress)", "suppressedSinceLastLine": "\(suppressed)"])
            }
            return Self.json(.unauthorized, ["error": "that is not the admin token"])
        case .throttled(let seconds):
            if let suppressed = signInFailureLog.admit() {
                logger.warning(
                    "admin sign-in throttled: too many wrong tokens",
                    metadata: ["client": "\(clientAddress)", "retryAfter": "\(seconds)", "suppressedSinceLastLine": "\(suppressed)"])
            }
            return Self.throttled(seconds)
        }
    }

    /// `DELETE /admin/session`: the secret in the header stops working at once.
    func signOut(_ request: Request, clientAddress: String) async -> Response {
        guard case .allowed(.session(let secret)) = access.verdict(request.headers, clientAddress: clientAddress) else {
            return Self.json(.unauthorized, ["error": "not signed in: send the session in X-Toolgate-Admin-Session"])
        }
        access.sessions.signOut(secret: secret)
        logger.notice("admin signed out")
        return Response(status: .noContent, headers: [.cacheControl: "no-store"])
    }

    enum Authorization {
        case granted(AdminAccess.Credential)
        case refusal(Response)
    }

    /// 401 without a right token or a live secret; 429 while the address is throttled for wrong tokens.
    func authorize(_ request: Request, clientAddress: String) -> Authorization {
        switch access.verdict(request.headers, clientAddress: clientAddress) {
        case .allowed(let credential): return .granted(credential)
        case .refused:
            if request.headers[.authorization] != nil, let suppressed = signInFailureLog.admit() {
                logger.warning(
                    "admin API request refused: wrong token", metadata: ["client": "\(clientAddress)", "suppressedSinceLastLine": "\(suppressed)"])
            }
            return .refusal(Self.unauthorized())
        case .throttled(let seconds): return .refusal(Self.throttled(seconds))
        }
    }

    static func throttled(_ seconds: Int) -> Response {
        var response = json(.tooManyRequests, ["error": .string("too many wrong admin tokens from this address; try again in \(seconds) s")])
        response.headers[.retryAfter] = String(seconds)
        return response
    }

    static func unauthorized() -> Response {
        var response = json(
            .unauthorized,
            ["error": "missing or wrong admin credentials: send Authorization: Bearer <admin token>, or sign in on /admin/"])
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        Response(
            status: status,
            headers: [
                .contentType: "application/json", .cacheControl: "no-store", HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                HTTPField.Name("Cross-Origin-Resource-Policy")!: "same-origin",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(value))))
    }

    /// One approval as the API shows it, with `agentWaitsUntil`: when a call that asked for it stops waiting
    /// (`createdAt` plus the tool's `approval.wait` in the policy in force; null when the tool no longer asks).
    func shown(_ approval: Approval) -> JSONValue {
        var value = Self.json(approval)
        if case .object(var fields) = value {
            let entry = policy.snapshot(forServer: approval.server).policy.entry(for: approval.tool)
            fields["agentWaitsUntil"] =
                entry.flatMap { $0.action == .approve ? $0.approval : nil }
                .map { JSONValue.string(Self.timestamp(approval.createdAtMillis + Int64($0.waitSeconds) * 1_000)) } ?? JSONValue.null
            value = .object(fields)
        }
        return value
    }

    static func json(_ approval: Approval) -> JSONValue {
        let arguments = (try? JSONParser.parse(approval.arguments)) ?? .string(approval.arguments)
        return [
            "id": .string(approval.id), "state": .string(approval.state.rawValue), "grant": .string(approval.grant),
            "server": approval.server.map(JSONValue.string) ?? .null,
            "tool": .string(approval.tool), "arguments": arguments,
            "policySha256": .string(approval.policySHA256), "createdAt": .string(timestamp(approval.createdAtMillis)),
            "expiresAt": .string(timestamp(approval.expiresAtMillis)),
            "display": [
                "tool": display(ArgumentDisplay.text(approval.tool)), "grant": display(ArgumentDisplay.text(approval.grant)),
                "arguments": display(ArgumentDisplay.pretty(arguments)),
            ],
        ]
    }

    /// Plain pieces as strings, escapes as `{"escape": "\\u202e"}`.
    static func display(_ segments: [ArgumentDisplay.Segment]) -> JSONValue {
        .array(
            segments.map { segment in
                switch segment {
                case .text(let text): .string(text)
                case .escape(let text): ["escape": .string(text)]
                }
            })
    }

    /// RFC 3339, UTC, milliseconds.
    static func timestamp(_ millis: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1_000))
    }
}

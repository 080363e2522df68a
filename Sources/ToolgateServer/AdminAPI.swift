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

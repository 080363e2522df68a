import Foundation
import HTTPTypes
import ToolgateCore

/// Which headers cross the proxy, in each direction.
enum ProxyHeaders {
    /// RFC 9110 section 7.6.1: meaningful for one connection only.
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    /// Never forwarded upstream: the agent's credential is for toolgate only; an encoded body could not be
    /// filtered; curl sets Host and Content-Length from the request it sends.
    static let withheldUpstream: Set<String> = ["authorization", "accept-encoding", "host", "content-length", "expect"]

    /// Everything but the `Connection` header's own tokens: the same for every request, so built once.
    static let alwaysDropped = hopByHop.union(withheldUpstream)

    static func upstream(from agent: HTTPFields, adding configured: [HTTPHeader]) -> [HTTPHeader] {
        // Most requests name no connection option and the operator configures few headers: no set is built then.
        let connection = connectionTokens(agent)
        var out: [HTTPHeader] = []
        out.reserveCapacity(agent.count + configured.count)
        for field in agent {
            let lower = field.name.canonicalName
            if alwaysDropped.contains(lower) || (!connection.isEmpty && connection.contains(lower)) { continue }
            if configured.contains(where: { $0.name.equalsIgnoringASCIICase(lower) }) { continue }
            out.append(HTTPHeader(field.name.rawName, field.value))
        }
        out.append(contentsOf: configured)
        return out
    }

    /// The upstream's response headers for the agent. Length and framing are the server's own business.
    static func downstream(from upstream: [HTTPHeader]) -> HTTPFields {
        var connection: Set<String> = []
        for header in upstream where header.name.equalsIgnoringASCIICase("connection") {
            for token in header.value.split(separator: ",") { connection.insert(token.trimmingWhitespace.lowercased()) }
        }
        var fields = HTTPFields()
        for header in upstream {
            guard let name = HTTPField.Name(header.name) else { continue }
            let lower = name.canonicalName
            if hopByHop.contains(lower) || lower == "content-length" || (!connection.isEmpty && connection.contains(lower)) { continue }
            fields.append(HTTPField(name: name, value: header.value))
        }
        return fields
    }

    private static func connectionTokens(_ fields: HTTPFields) -> Set<String> {
        var tokens: Set<String> = []
        guard fields.contains(.connection) else { return tokens }
        for value in fields[values: .connection] {
            for token in value.split(separator: ",") { tokens.insert(token.trimmingWhitespace.lowercased()) }
        }
        return tokens
    }

    /// A name as a header value: as is when it is plain visible ASCII, else `=?base64?…?=`.
    static func nameHeaderValue(_ name: String) -> String {
        let plain = !name.isEmpty && name.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E } && !name.hasPrefix("=?")
        return plain ? name : "=?base64?" + Data(name.utf8).base64EncodedString() + "?="
    }
}

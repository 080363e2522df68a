import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// Checks each HTTP/1 request head before Hummingbird converts it, while the facts that conversion drops are
/// still there: the HTTP version, the request target as sent, and every `Host` field.
/// - HTTP/1.0 gets 505: toolgate streams answers with chunked encoding, which 1.0 clients cannot read.
/// - An absolute-form target (`POST http://host/mcp`) names the authority the request actually uses (RFC 9112
///   section 3.2.2), so `Host` is set from it and the DNS-rebinding guard checks that one.
/// - A request with no `Host`, or with more than one, is refused with 400 (RFC 9112 section 3.2).
/// Refusals carry a JSON-RPC error body, as toolgate's other HTTP refusals do, and close the connection.
final class HTTP1RequestHeadGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Set after a refusal: the rest of that request is dropped until the connection closes.
    private var refusing = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard case .head(var head) = part else {
            if !refusing { context.fireChannelRead(data) }
            return
        }
        switch Self.check(&head) {
        case .pass:
            refusing = false
            context.fireChannelRead(wrapInboundOut(.head(head)))
        case .refuse(let status, let message):
            refusing = true
            refuse(context: context, version: head.version, status: status, message: message)
        }
    }

    enum Verdict: Equatable {
        case pass
        case refuse(HTTPResponseStatus, String)
    }

    static func check(_ head: inout HTTPRequestHead) -> Verdict {
        guard head.version.major == 1, head.version.minor >= 1 else {
            return .refuse(.httpVersionNotSupported, "HTTP/\(head.version.major).\(head.version.minor) is not supported: use HTTP/1.1")
        }
        if let (authority, path) = absoluteForm(head.uri) {
            head.headers.replaceOrAdd(name: "Host", value: authority)
            head.uri = path
        }
        let hosts = head.headers["Host"]
        guard hosts.count == 1 else {
            return .refuse(.badRequest, hosts.isEmpty ? "the request has no Host" : "the request has more than one Host")
        }
        return .pass
    }

    /// `http://authority/path?query` → (authority, `/path?query`); nil for the usual origin-form `/path`.
    static func absoluteForm(_ uri: String) -> (String, String)? {
        guard !uri.hasPrefix("/"), uri != "*", let schemeEnd = uri.range(of: "://") else { return nil }
        let rest = uri[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var path = String(rest[authorityEnd...])
        if !path.hasPrefix("/") { path = "/" + path }
        return (String(rest[..<authorityEnd]), path)
    }

    private func refuse(context: ChannelHandlerContext, version: HTTPVersion, status: HTTPResponseStatus, message: String) {
        let body = #"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"# + Self.jsonString(message) + "}}"
        var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
        buffer.writeString(body)
        let headers = HTTPHeaders([
            ("Content-Type", "application/json"), ("Content-Length", String(buffer.readableBytes)), ("Connection", "close"),
        ])
        let replyVersion = version.major == 1 && version.minor <= 1 ? version : .http1_1
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: replyVersion, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    private static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += "?"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

/// Puts an `HTTP1RequestHeadGuard` and a `ClientDepartureWatch` in front of Hummingbird's HTTP/1 → HTTP types
/// conversion. Hummingbird adds extra handlers after that conversion, so this one places them before it and steps
/// aside.
final class HTTP1RequestHeadGuardInstaller: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    /// How long one request may take to arrive in full (`RequestArrivalDeadline`).
    let requestDeadline: TimeAmount

    init(requestDeadline: TimeAmount) { self.requestDeadline = requestDeadline }

    func handlerAdded(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        do {
            let codec = try pipeline.context(handlerType: HTTP1ToHTTPServerCodec.self)
            try pipeline.addHandler(HTTP1RequestHeadGuard(), position: .before(codec.handler))
            try pipeline.addHandler(ClientDepartureWatch(), position: .before(codec.handler))
            try pipeline.addHandler(RequestArrivalDeadline(limit: requestDeadline), position: .before(codec.handler))
        } catch {
            context.fireErrorCaught(error)
        }
        pipeline.removeHandler(context: context, promise: nil)
    }
}

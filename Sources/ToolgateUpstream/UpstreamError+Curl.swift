import CCurl
import ToolgateCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Messages name the upstream URL and the failure, since they end up in logs and in the agent's `-32603` error; the
/// URL without userinfo and query (`ShownURL`), where hosted MCP servers carry keys.
extension UpstreamError {
    static func unreachable(_ url: String, _ detail: String) -> UpstreamError {
        UpstreamError(code: .unreachable, message: "upstream \(ShownURL.redacting(url)) unreachable: \(detail)", requestSent: false)
    }

    static func headersTimeout(_ url: String, after timeout: Duration) -> UpstreamError {
        UpstreamError(code: .headersTimeout, message: "upstream \(ShownURL.redacting(url)) sent no response headers within \(format(timeout))")
    }

    static func idleTimeout(_ url: String, after timeout: Duration) -> UpstreamError {
        UpstreamError(code: .idleTimeout, message: "upstream \(ShownURL.redacting(url)) sent nothing for \(format(timeout)) inside the response body")
    }

    static func idleTimeout(_ url: String, after timeout: Duration, reason: String) -> UpstreamError {
        UpstreamError(code: .idleTimeout, message: "upstream \(ShownURL.redacting(url)) response cut after \(format(timeout)) without progress: \(reason)")
    }

    static func transport(_ url: String, _ detail: String) -> UpstreamError {
        UpstreamError(code: .transport, message: "upstream \(ShownURL.redacting(url)) transport error: \(detail)")
    }

    /// Refused before anything was sent (a header that cannot be sent, say).
    static func notSent(_ url: String, _ detail: String) -> UpstreamError {
        UpstreamError(code: .transport, message: "upstream \(ShownURL.redacting(url)) request not sent: \(detail)", requestSent: false)
    }

    static func cancelled(_ url: String, _ why: String = "request cancelled") -> UpstreamError {
        UpstreamError(code: .cancelled, message: "upstream \(ShownURL.redacting(url)) \(why)")
    }

    /// Before the head arrived, failing to connect (refused, unresolvable, connect timeout) is `unreachable`;
    /// everything else, and any failure after the head, is a broken transport.
    static func curl(
        _ code: CURLcode, url: String, headReceived: Bool, osErrno: Int, errorBuffer: String
    ) -> UpstreamError {
        let curlText = String(cString: curl_easy_strerror(code))
        let detail = errorBuffer.isEmpty ? curlText : errorBuffer
        guard !headReceived else { return .transport(url, detail) }
        switch code {
        case CURLE_COULDNT_CONNECT:
            return .unreachable(url, osErrno != 0 ? String(cString: strerror(Int32(osErrno))) : detail)
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_OPERATION_TIMEDOUT, CURLE_URL_MALFORMAT:
            // No total timeout is set, so a timeout before the head is the connect timeout.
            return .unreachable(url, detail)
        default:
            return .transport(url, detail)
        }
    }

    /// `250 ms`, `5 s`, `1.5 s`: short enough for a log line, exact enough for the injected test timeouts.
    static func format(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds < 1000 { return "\(milliseconds) ms" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000) s" }
        return "\(Double(milliseconds) / 1000) s"
    }
}

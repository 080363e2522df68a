import COpenSSL

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// TLS on one connection's socket: hiredis opened the socket and still formats commands and parses replies, but
/// the bytes go through `SSL_write` / `SSL_read` here instead of hiredis's `write()` / `read()`. Non-blocking: each
/// call says whether it must wait for the socket to become readable or writable, and the connection's `poll()` loop
/// waits for that.
///
/// Owned by the connection thread, like the hiredis context whose socket it wraps, and freed before that context.
final class RedisTLSSession {
    enum Progress: Equatable {
        case done
        case wantRead
        case wantWrite
        case failed(String)
    }

    enum Transfer: Equatable {
        case transferred(Int)
        case wantRead
        case wantWrite
        /// The server ended the TLS session (close_notify) or the socket.
        case closed(String)
        case failed(String)
    }

    /// Ownership: created in `init`, freed in `deinit`.
    private let ssl: OpaquePointer
    private let verifiedName: String

    /// `serverName` is SNI (unless it is an IP address, which SNI may not carry) and the name the server's
    /// certificate must carry: a DNS name, or an IP address matched against the certificate's IP entries.
    init(context: RedisTLSContext, socket: Int32, serverName: String) throws(RedisError) {
        guard let ssl = SSL_new(context.context) else {
            throw .tlsConfiguration("TLS: OpenSSL could not create a session: \(RedisTLSContext.openSSLErrors())")
        }
        self.ssl = ssl
        verifiedName = serverName
        guard SSL_set_fd(ssl, socket) == 1 else {
            throw .tlsConfiguration("TLS: OpenSSL could not take the socket: \(RedisTLSContext.openSSLErrors())")
        }
        if Self.isIPAddress(serverName) {
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1 else {
                throw .tlsConfiguration("TLS: cannot verify the IP address \(serverName): \(RedisTLSContext.openSSLErrors())")
            }
        } else {
            guard toolgate_ssl_set_sni(ssl, serverName) == 1, SSL_set1_host(ssl, serverName) == 1 else {
                throw .tlsConfiguration("TLS: cannot use the server name \(serverName): \(RedisTLSContext.openSSLErrors())")
            }
        }
        SSL_set_connect_state(ssl)
    }

    deinit {
        SSL_free(ssl)
    }

    /// One step of the client handshake; call again when the socket is ready as asked.
    func handshake() -> Progress {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 { return .done }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        default: return .failed("TLS handshake with Redis failed: \(failureText(result))")
        }
    }

    func write(_ bytes: UnsafeRawPointer, count: Int) -> Transfer {
        ERR_clear_error()
        let result = SSL_write(ssl, bytes, Int32(clamping: count))
        if result > 0 { return .transferred(Int(result)) }
        return transferFailure(result, doing: "writing to Redis over TLS")
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Transfer {
        ERR_clear_error()
        let result = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        if result > 0 { return .transferred(Int(result)) }
        return transferFailure(result, doing: "reading from Redis over TLS")
    }

    private func transferFailure(_ result: Int32, doing what: String) -> Transfer {
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .closed("\(what) failed: Redis closed the TLS session")
        default: return .failed("\(what) failed: \(failureText(result))")
        }
    }

    /// OpenSSL's reason in words, the certificate verification result first, with what to check.
    private func failureText(_ result: Int32) -> String {
        let errorCode = SSL_get_error(ssl, result)
        let verify = SSL_get_verify_result(ssl)
        if verify != Int(X509_V_OK) {
            _ = RedisTLSContext.openSSLErrors()
            let words = String(cString: X509_verify_cert_error_string(verify))
            let hint: String
            switch Int32(verify) {
            case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
                hint = "the certificate does not name \"\(verifiedName)\"; --redis-tls-server-name sets the name to verify"
            default:
                hint = "the certificate is not signed by a trusted CA; --redis-ca-file names the CA to trust"
            }
            return "the server's certificate was refused: \(words) (\(hint))"
        }
        if errorCode == SSL_ERROR_SYSCALL {
            let queued = RedisTLSContext.openSSLErrors()
            if result == 0 || errno == 0 { return "the server closed the connection (is this a TLS port?)" }
            let text = String(cString: strerror(errno))
            return queued == "no detail from OpenSSL" ? text : "\(text); \(queued)"
        }
        let reasons = RedisTLSContext.openSSLErrors()
        // TLS 1.3 servers say "certificate required"; TLS 1.2 ones a bare handshake failure alert.
        if reasons.contains("certificate required") || reasons.contains("alert handshake failure") {
            return "\(reasons) (the server requires a client certificate: give --redis-cert-file and --redis-key-file)"
        }
        if reasons.contains("wrong version number") || reasons.contains("packet length too long")
            || reasons.contains("record layer failure")
        {
            return "\(reasons) (the server does not speak TLS on this port: use redis:// for a plaintext port)"
        }
        if reasons.contains("unknown ca") || reasons.contains("bad certificate") {
            return "\(reasons) (the server refused toolgate's client certificate: check --redis-cert-file)"
        }
        return reasons
    }

    static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }
}

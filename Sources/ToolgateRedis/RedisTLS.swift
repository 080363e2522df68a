import COpenSSL

/// How `rediss://` connections verify the server and prove who toolgate is: `--redis-ca-file`,
/// `--redis-cert-file` + `--redis-key-file`, `--redis-tls-server-name`.
public struct RedisTLSOptions: Sendable, Equatable {
    /// PEM CA certificates to trust instead of the system store; nil: the system CA store.
    public var caFile: String?
    /// Client certificate and its key (mutual TLS): both or neither.
    public var certificateFile: String?
    public var keyFile: String?
    /// The name sent as SNI and verified in the server's certificate, instead of the URL's host: for nodes known by
    /// IP address whose certificates name a DNS name (cluster maps list bare IPs).
    public var serverName: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }

    public var isDefault: Bool { self == RedisTLSOptions() }
}

/// One OpenSSL `SSL_CTX` with the options loaded, shared by every TLS connection of a client (and of a cluster's
/// node clients), so certificate files are read once, at start, where a bad file is a startup error.
///
/// `@unchecked Sendable`: the context is configured in `init` and only read afterwards (`SSL_new`), which OpenSSL
/// allows from any thread.
public final class RedisTLSContext: @unchecked Sendable {
    public let options: RedisTLSOptions
    /// Ownership: created in `init`, freed in `deinit`; each `SSL` made from it holds its own reference.
    let context: OpaquePointer

    public init(options: RedisTLSOptions) throws(RedisError) {
        self.options = options
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw .tlsConfiguration("TLS: OpenSSL could not create a context: \(Self.openSSLErrors())")
        }
        self.context = context
        _ = toolgate_ssl_ctx_set_min_tls12(context)
        _ = toolgate_ssl_ctx_set_write_modes(context)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if let caFile = options.caFile {
            ERR_clear_error()
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                throw .tlsConfiguration("--redis-ca-file \(caFile): cannot load CA certificates: \(Self.openSSLErrors())")
            }
        } else {
            guard SSL_CTX_set_default_verify_paths(context) == 1 else {
                throw .tlsConfiguration("TLS: cannot load the system CA store: \(Self.openSSLErrors())")
            }
        }
        switch (options.certificateFile, options.keyFile) {
        case (nil, nil):
            break
        case (let certificate?, let key?):
            ERR_clear_error()
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else {
                throw .tlsConfiguration("--redis-cert-file \(certificate): cannot load the certificate: \(Self.openSSLErrors())")
            }
            guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1 else {
                throw .tlsConfiguration("--redis-key-file \(key): cannot load the private key: \(Self.openSSLErrors())")
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                throw .tlsConfiguration(
                    "--redis-key-file \(key) does not belong to --redis-cert-file \(certificate): \(Self.openSSLErrors())")
            }
        default:
            throw .tlsConfiguration("mutual TLS needs both --redis-cert-file and --redis-key-file")
        }
    }

    deinit {
        SSL_CTX_free(context)
    }

    /// For `rediss://` without TLS options: verification against the system CA store. Nil only if OpenSSL cannot
    /// make a context at all, and then connections fail with that.
    static let systemDefault: RedisTLSContext? = try? RedisTLSContext(options: RedisTLSOptions())

    /// OpenSSL's error queue of this thread, in words, emptied.
    static func openSSLErrors() -> String {
        var reasons: [String] = []
        while case let code = ERR_get_error(), code != 0 {
            if let reason = ERR_reason_error_string(code) {
                reasons.append(String(cString: reason))
            } else {
                var buffer = [CChar](repeating: 0, count: 256)
                ERR_error_string_n(code, &buffer, buffer.count)
                reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
        }
        return reasons.isEmpty ? "no detail from OpenSSL" : reasons.joined(separator: "; ")
    }
}

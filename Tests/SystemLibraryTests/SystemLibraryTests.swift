import CCurl
import CHiredis
import COpenSSL
import Foundation
import Testing

/// The adapters' C libraries link, and the typed wrappers reach the variadic functions.
@Suite struct SystemLibraryTests {
    @Test func curlTypedSetoptAndGetinfoWork() throws {
        #expect(curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK)
        let handle = try #require(curl_easy_init())
        defer { curl_easy_cleanup(handle) }
        #expect(toolgate_easy_setopt_string(handle, CURLOPT_URL, "http://127.0.0.1:1/mcp") == CURLE_OK)
        #expect(toolgate_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, 500) == CURLE_OK)
        #expect(toolgate_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1) == CURLE_OK)
        // Port 1 refuses: the transfer fails fast with a connect error, and getinfo reads the status.
        let code = curl_easy_perform(handle)
        #expect(code == CURLE_COULDNT_CONNECT)
        var status = -1
        #expect(toolgate_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
        #expect(status == 0)
    }

    @Test func openSSLLinksAndTheTypedWrappersReachItsMacros() throws {
        let context = try #require(SSL_CTX_new(TLS_client_method()))
        defer { SSL_CTX_free(context) }
        #expect(toolgate_ssl_ctx_set_min_tls12(context) == 1)
        #expect(toolgate_ssl_ctx_set_write_modes(context) & Int(SSL_MODE_ENABLE_PARTIAL_WRITE) != 0)
        let ssl = try #require(SSL_new(context))
        defer { SSL_free(ssl) }
        #expect(toolgate_ssl_set_sni(ssl, "redis.example") == 1)
        // OpenSSL 3 (Debian bookworm's libssl3): what the TLS code is written against.
        #expect(OpenSSL_version_num() >= 0x3000_0000)
    }

    @Test func curlIsRecentEnoughForTheMultiAPI() throws {
        let info = curl_version_info(CURLVERSION_FOURTH)!
        // curl_multi_poll and curl_multi_wakeup arrived in 7.66 / 7.68.
        #expect(info.pointee.version_num >= 0x07_44_00)
    }

    static let redisPort: Int32? = ProcessInfo.processInfo.environment["TOOLGATE_TEST_REDIS_PORT"].flatMap { Int32($0) }

    @Test(.enabled(if: redisPort != nil, "scripts/test.sh starts redis-server and sets TOOLGATE_TEST_REDIS_PORT"))
    func hiredisArgvCommandsReachARealRedis() throws {
        let context = redisConnect("127.0.0.1", Self.redisPort!)!
        defer { redisFree(context) }
        #expect(context.pointee.err == 0)
        // Arguments are byte buffers with explicit lengths, so a NUL inside one survives the round trip.
        let words: [[UInt8]] = [Array("ECHO".utf8), Array("toolgate\u{0}binary".utf8)]
        var arguments: [UnsafePointer<CChar>?] = words.map { word in
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: word.count)
            word.withUnsafeBufferPointer { buffer.update(from: UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), count: word.count) }
            return UnsafePointer(buffer)
        }
        defer { arguments.forEach { UnsafeMutablePointer(mutating: $0)?.deallocate() } }
        var lengths = words.map(\.count)
        let reply = redisCommandArgv(context, Int32(words.count), &arguments, &lengths)
        let typed = try #require(reply?.assumingMemoryBound(to: redisReply.self))
        defer { freeReplyObject(reply) }
        #expect(typed.pointee.type == REDIS_REPLY_STRING)
        let echoed = UnsafeRawBufferPointer(start: typed.pointee.str, count: typed.pointee.len)
        #expect(Array(echoed) == words[1])
    }

    @Test func hiredisReportsAnUnreachableServer() throws {
        let context = redisConnect("127.0.0.1", 1)!
        defer { redisFree(context) }
        #expect(context.pointee.err != 0)
    }
}

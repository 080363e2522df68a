import CCurl
import ToolgateCore

/// Turns an `UpstreamRequest` into easy-handle options, so that the upstream sees the request as the proxy
/// built it: the given headers and the body byte for byte, with none of curl's own defaults that would
/// change the meaning (`Expect: 100-continue`, a form content type, a compressed response).
extension CurlTransfer {
    func configure(
        _ handle: UnsafeMutableRawPointer, for request: UpstreamRequest, configuration: CurlUpstreamTransport.Configuration
    ) throws(UpstreamError) {
        let context = Unmanaged.passUnretained(self).toOpaque()
        try check(toolgate_easy_setopt_string(handle, CURLOPT_URL, request.url), "URL")
        try check(toolgate_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1), "NOSIGNAL")
        try check(toolgate_easy_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"), "PROTOCOLS_STR")
        // The upstream is configured explicitly; an http_proxy variable in the environment must not reroute it.
        try check(toolgate_easy_setopt_string(handle, CURLOPT_PROXY, ""), "PROXY")
        try check(toolgate_easy_setopt_long(handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1)), "HTTP_VERSION")
        try check(
            toolgate_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, Self.milliseconds(configuration.connectTimeout))),
            "CONNECTTIMEOUT_MS")
        try check(toolgate_easy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer), "ERRORBUFFER")
        try check(toolgate_easy_setopt_pointer(handle, CURLOPT_PRIVATE, context), "PRIVATE")
        try check(toolgate_easy_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, curlHeaderCallback), "HEADERFUNCTION")
        try check(toolgate_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, context), "HEADERDATA")
        try check(toolgate_easy_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, curlWriteCallback), "WRITEFUNCTION")
        try check(toolgate_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, context), "WRITEDATA")

        let sendsBody = request.method == .post || (request.method == .delete && !request.body.isEmpty)
        switch request.method {
        case .get:
            try check(toolgate_easy_setopt_long(handle, CURLOPT_HTTPGET, 1), "HTTPGET")
        case .post, .delete:
            if request.method == .delete {
                try check(toolgate_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, "DELETE"), "CUSTOMREQUEST")
            }
            if sendsBody {
                try check(toolgate_easy_setopt_long(handle, CURLOPT_POST, 1), "POST")
                try check(toolgate_easy_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)), "POSTFIELDSIZE_LARGE")
                // COPYPOSTFIELDS copies `POSTFIELDSIZE_LARGE` bytes now, so the request's array need not outlive this call.
                let copied = request.body.withUnsafeBytes { bytes in
                    if let base = bytes.baseAddress, !bytes.isEmpty {
                        return toolgate_easy_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: base))
                    }
                    return toolgate_easy_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, "")
                }
                try check(copied, "COPYPOSTFIELDS")
            }
        }

        headerList = try Self.headerList(for: request, sendsBody: sendsBody, url: url)
        try check(toolgate_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList), "HTTPHEADER")
    }

    /// curl's header list syntax: `Name: value` sends, `Name;` sends an empty value, `Name:` removes curl's own.
    static func headerList(for request: UpstreamRequest, sendsBody: Bool, url: String) throws(UpstreamError) -> UnsafeMutablePointer<curl_slist>? {
        var lines: [String] = []
        var hasContentType = false
        for header in request.headers {
            let name = header.name
            // Framing is curl's job: it derives Content-Length from the body. Expect is always suppressed below.
            if name.equalsIgnoringASCIICase("content-length") || name.equalsIgnoringASCIICase("transfer-encoding")
                || name.equalsIgnoringASCIICase("expect")
            {
                continue
            }
            guard isValidName(header.name) else {
                throw .notSent(url, "invalid header name \"\(header.name)\"")
            }
            guard !header.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                throw .notSent(url, "header \(header.name) contains a line break")
            }
            if name.equalsIgnoringASCIICase("content-type") { hasContentType = true }
            lines.append(header.value.isEmpty ? "\(header.name);" : "\(header.name): \(header.value)")
        }
        // Waiting for `100 Continue` costs a round trip (or a second), and upstream MCP servers never need it.
        lines.append("Expect:")
        // Without this, a POST would carry curl's `application/x-www-form-urlencoded`.
        if sendsBody && !hasContentType { lines.append("Content-Type:") }

        var list: UnsafeMutablePointer<curl_slist>?
        for line in lines {
            guard let extended = curl_slist_append(list, line) else {
                curl_slist_free_all(list)
                throw .notSent(url, "out of memory building headers")
            }
            list = extended
        }
        return list
    }

    /// An RFC 9110 token: anything else would corrupt the request line by line.
    private static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
                UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
                UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
                return true
            default:
                return false
            }
        }
    }

    private func check(_ code: CURLcode, _ option: String) throws(UpstreamError) {
        guard code == CURLE_OK else {
            throw .notSent(url, "CURLOPT_\(option): \(String(cString: curl_easy_strerror(code)))")
        }
    }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds) * 1000 + Int(duration.components.attoseconds / 1_000_000_000_000_000)
    }
}

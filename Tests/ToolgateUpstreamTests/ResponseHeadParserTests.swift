import Testing
import ToolgateCore
@testable import ToolgateUpstream

/// Header lines as curl's header callback delivers them, one raw line each, CRLF included.
@Suite struct ResponseHeadParserTests {
    static func feed(_ lines: [String]) -> (ResponseHeadParser, completedAt: Int?) {
        var parser = ResponseHeadParser()
        var completedAt: Int?
        for (index, line) in lines.enumerated() where parser.feed(line: Array(line.utf8)) {
            completedAt = index
        }
        return (parser, completedAt)
    }

    @Test func keepsOrderAndSpellingOfHeaderNames() {
        let (parser, completedAt) = Self.feed([
            "HTTP/1.1 201 Created\r\n", "Content-Type: text/event-stream\r\n", "mcp-session-id:  abc \r\n",
            "Set-Cookie: a=1\r\n", "Set-Cookie: b=2\r\n", "\r\n",
        ])
        #expect(completedAt == 5)
        #expect(parser.status == 201)
        #expect(parser.headers == [
            HTTPHeader("Content-Type", "text/event-stream"), HTTPHeader("mcp-session-id", "abc"),
            HTTPHeader("Set-Cookie", "a=1"), HTTPHeader("Set-Cookie", "b=2"),
        ])
    }

    @Test func interimBlocksAreSkipped() {
        let (parser, completedAt) = Self.feed([
            "HTTP/1.1 100 Continue\r\n", "\r\n", "HTTP/1.1 103 Early Hints\r\n", "Link: </a>\r\n", "\r\n",
            "HTTP/1.1 200 OK\r\n", "X-Final: yes\r\n", "\r\n",
        ])
        #expect(completedAt == 7)
        #expect(parser.status == 200)
        #expect(parser.headers == [HTTPHeader("X-Final", "yes")])
    }

    @Test func trailersAfterTheHeadAreIgnored() {
        let (parser, _) = Self.feed(["HTTP/1.1 200 OK\r\n", "A: 1\r\n", "\r\n", "Trailer-Thing: x\r\n", "\r\n"])
        #expect(parser.headers == [HTTPHeader("A", "1")])
    }

    @Test func foldedLinesContinueTheValueAndEmptyValuesSurvive() {
        let (parser, _) = Self.feed(["HTTP/1.0 500 Oops\n", "X-Long: one\n", "\t two\n", "X-Empty:\n", "\n"])
        #expect(parser.status == 500)
        #expect(parser.headers == [HTTPHeader("X-Long", "one two"), HTTPHeader("X-Empty", "")])
    }
}

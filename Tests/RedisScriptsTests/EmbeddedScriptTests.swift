import Foundation
import RedisScripts
import Testing

@Suite struct EmbeddedScriptTests {
    static let luaDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("lua")

    @Test(arguments: RedisScript.allCases)
    func embeddedBytesEqualTheFile(script: RedisScript) throws {
        let file = try Data(contentsOf: Self.luaDirectory.appendingPathComponent(script.fileName))
        #expect(script.bytes == Array(file))
        #expect(!script.bytes.isEmpty)
    }

    @Test func everyLuaFileIsEmbedded() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.luaDirectory.path).filter { $0.hasSuffix(".lua") }
        #expect(Set(files) == Set(RedisScript.allCases.map(\.fileName)))
    }

    @Test(arguments: RedisScript.allCases)
    func everyScriptOpensWithItsContract(script: RedisScript) {
        let text = String(decoding: script.bytes, as: UTF8.self)
        #expect(text.hasPrefix("-- \(script.fileName):"))
        for section in ["KEYS", "ARGV", "Returns", "Guarantee"] { #expect(text.contains(section), "\(script.fileName) lacks \(section)") }
    }
}

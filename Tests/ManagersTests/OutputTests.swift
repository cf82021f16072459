import CCatCLI
import Testing

@Suite("Command output (pure logic)")
struct OutputTests {
    /// A newline in a file name or an error message stays in its row (`ccat ops list`, `status`).
    @Test func controlCharactersStayInTheirRow() {
        var table = TextTable(["ID", "PATH", "ERROR"])
        table.append(["1", "obs-1/new\nline.fits", "tab\there \u{1B}[31m"])
        table.append(["2", "obs-1/plain.fits", "-"])
        let lines = table.render().split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 3)
        #expect(lines[1].contains(#"obs-1/new\nline.fits"#) && lines[1].contains(#"tab\there \u{1B}[31m"#), "\(lines[1])")
        #expect(lines[2].contains("obs-1/plain.fits"))
    }
}

package prestage

// Bodies in entry_amd64.s and blob_amd64.s.
func entry()
func blob()

// EntrySymbol is the symbol a release build names with the linker's -E.
const EntrySymbol = "github.com/incarnate-dev/incarnate/internal/prestage.entry"

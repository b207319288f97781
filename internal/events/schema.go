package events

import "embed"

// Schemas holds the JSON Schema (draft 2020-12) of each event type, as
// schemas/<type>.schema.json: the envelope's attributes and the type's data.
// docs/events.md documents them; eventstest validates events against them.
//
//go:embed schemas/*.schema.json
var Schemas embed.FS

// SchemaPath is the path in Schemas of the schema of event type t.
func SchemaPath(t string) string { return "schemas/" + t + ".schema.json" }

module gokrazy/build/hearth

go 1.26.0

require github.com/hearthchat/hearth v0.0.0-00010101000000-000000000000

replace github.com/hearthchat/hearth => ../../../..

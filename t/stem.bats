#!/usr/bin/env bats
# lib/stem: the chat-text tokenizer and the Snowball stemmers it feeds,
# driven through t/unit/stemtest.

load lib/common

stemtest() { "$UNDE_TOP_BUILDDIR/t/unit/stemtest" "$@"; }

@test "Cyrillic and Latin words come out lower-cased, with ё folded to е" {
	run -0 stemtest tokens 'ПРИВЕТ Ёлка Hello'
	assert_equal "$(jq -rs 'map(.text)|join(" ")' <<<"$output")" "привет елка hello"
	assert_equal "$(jq -rs 'map(.script)|join(" ")' <<<"$output")" "cyrillic cyrillic latin"
}

@test "a word typed in capitals is flagged caps, a capitalised one only capital" {
	run -0 stemtest tokens 'ЗАЧЕМ Зачем OK'
	assert_equal "$(jq -rs 'map(.caps)|join(" ")' <<<"$output")" "true false true"
	assert_equal "$(jq -rs 'map(.capital)|join(" ")' <<<"$output")" "true true true"
}

@test "Russian words are stemmed by the Russian stemmer so inflected forms meet" {
	run -0 stemtest stem ужасный ужасно ужасная
	assert_equal "${lines[0]}" "${lines[1]}"
	assert_equal "${lines[0]}" "${lines[2]}"
	assert_equal "${lines[0]}" "ужасн"
}

@test "English words are stemmed by the English stemmer" {
	run -0 stemtest stem loved loving hated
	assert_equal "${lines[*]}" "love love hate"
}

@test "a mixed-script word goes to the stemmer of its majority script" {
	run -0 stemtest tokens 'cпасибо'
	assert_equal "$(jq -r .script <<<"$output")" mixed
	assert_equal "$(jq -r .stem <<<"$output")" "cпасиб"
}

@test "letters repeated three times or more are cut to two and flagged" {
	run -0 stemtest tokens 'сууупер cooool'
	assert_equal "$(jq -rs 'map(.text)|join(" ")' <<<"$output")" "суупер cool"
	assert_equal "$(jq -rs 'map(.elongated)|join(" ")' <<<"$output")" "true true"
	run -0 stemtest squeeze 'суупер'
	assert_output "супер"
}

@test "inner apostrophes and hyphens stay inside a word, outer ones split" {
	run -0 stemtest tokens "don’t кто-то -да 'ok'"
	assert_equal "$(jq -rs 'map(.text)|join(" ")' <<<"$output")" "don't кто-то да ok"
}

@test "an emoji sequence with skin tone and ZWJ joins is one token" {
	run -0 stemtest tokens 'ok 👍🏽 👩‍💻 😡😡 🇦🇪'
	assert_equal "$(jq -rs 'map(.kind)|join(" ")' <<<"$output")" "word emoji emoji emoji emoji emoji"
	assert_equal "$(jq -rs 'map(.text)|.[1]' <<<"$output")" "👍🏽"
	assert_equal "$(jq -rs 'map(.text)|.[2]' <<<"$output")" "👩‍💻"
	assert_equal "$(jq -rs 'map(.text)|.[5]' <<<"$output")" "🇦🇪"
}

@test "emoticons are tokens, extended over their repeated last character" {
	run -0 stemtest tokens 'ну :) ладно :-((( xDDD <3 :D'
	assert_equal "$(jq -rs 'map(select(.kind=="emoticon").text)|join(" ")' <<<"$output")" ":) :( xd <3 :d"
	assert_equal "$(jq -rs 'map(select(.text==":(").raw_len)|.[0]' <<<"$output")" 5
}

@test "Russian chat brackets are smiles and frowns, real parentheses are not" {
	run -0 stemtest tokens 'спасибо))) (правда) жаль(( ок)'
	assert_equal "$(jq -rs 'map(select(.kind=="emoticon").text)|join(" ")' <<<"$output")" ")) (( )"
}

@test "a URL's :// is not an emoticon and a time is one number" {
	run -0 stemtest tokens 'http://x.ru в 18:30'
	refute_output --partial emoticon
	assert_equal "$(jq -rs 'map(select(.kind=="number").text)|join(" ")' <<<"$output")" "18:30"
}

@test "punctuation runs are kept whole and the ellipsis character reads as three dots" {
	run -0 stemtest tokens 'что?! ну… да!!!'
	assert_equal "$(jq -rs 'map(select(.kind=="punct").text)|join(" ")' <<<"$output")" "?! ... !!!"
}

@test "token offsets point at the token's bytes in the input" {
	run -0 stemtest tokens 'аб cd'
	assert_equal "$(jq -rs 'map(.offset)|join(" ")' <<<"$output")" "0 5"
}

@test "invalid UTF-8 is refused with the offset of the bad byte" {
	run -65 --separate-stderr stemtest tokens "$(printf 'ok \xd0 x')"
	assert_equal "$stderr" "invalid UTF-8 at byte 3"
	run -65 --separate-stderr stemtest tokens "$(printf '\xc0\xaf')"
	assert_equal "$stderr" "invalid UTF-8 at byte 0"
}

#!/usr/bin/env bats
# t/unde-demo.bats — the README's first command: the whole product on the
# embedded defaults, in a throwaway root on a free port, run twice.

load lib/common

BATS_NO_PARALLELIZE_WITHIN_FILE=true

setup_file() {
	DEMO_DIR=$(unde_tmpdir)
	UNDE_DEV_PGPORT=$(unde_free_port)
	export DEMO_DIR UNDE_DEV_PGPORT R=$DEMO_DIR/env UNDE_BUILD_DIR=$UNDE_TOP_BUILDDIR
}

teardown_file() {
	[ -n "${R:-}" ] && unde-dev --root "$R" down >/dev/null 2>&1 || true
	unde_teardown_file
}

@test "unde-demo runs catalog, recognition, dialogue and voice offline and says what each did" {
	run --separate-stderr unde-demo --root "$R"
	assert_success
	assert_line --partial '27 products reached production'
	assert_line --partial 'a collage: '"$R"'/objects/unde-images/collages/'
	assert_line --partial 'item 0: exact — ZS03 Navy dress'
	assert_line --regexp '^  you: Привет! Я не ем глютен'
	assert_line --regexp '^  avatar \[local, mood .*, tone [a-z_]+, episodes [0-9]+\]: .+'
	assert_line --regexp "^  10 messages saved to the user's shard .*, 5 of them embedded by unde-embed$"
	assert_line --regexp "^  turn 5's ContextPack recalls turn 1: .*не ем глютен"

	assert_line --partial "$R/demo/last-reply.mp3"
	# what it points at is real: the collage, the photo, the audio
	collage=$(sed -n 's/^  a collage: //p' <<<"$output")
	[ "$(vipsheader -f width "$collage")" -gt 0 ]
	[ "$(ffprobe -v error -show_entries format=format_name -of csv=p=0 "$R/demo/last-reply.mp3")" = mp3 ]
	# the commands' own log lines went to the logs, not to the summary
	refute_output --partial '"level"'
	[ -s "$R/demo/catalog.log" ] && [ -s "$R/demo/dialogue.log" ]
}

@test "a second run with --json reports the same, as one JSON object" {
	run --separate-stderr unde-demo --root "$R" --json
	assert_success
	assert_json_line_count 1
	assert_jq '.catalog.products == 27 and .catalog.descriptors == 90
		and .recognition.items_detected == 1 and .recognition.matches[0].match_type == "exact"
		and .recognition.matches[0].matches[0].sku_id == "ZS03"
		and (.dialogue.turns | length) == 5 and .dialogue.messages_saved == 10
		and .dialogue.messages_embedded == 5 and (.dialogue.recalled_in_last_turn | test("не ем глютен"))
		and all(.dialogue.turns[]; .provider == "local" and (.reply | length) > 0)
		and .voice.tts.provider == "local" and .voice.bytes > 1000'
	[ "$(psql -XAtq "postgresql://postgres@127.0.0.1:$UNDE_DEV_PGPORT/unde_production" -c 'select count(*) from products')" = 27 ]
}

@test "a step that cannot run names itself, its log and what to do; bad arguments are usage errors" {
	rm -f "$R/demo/dialogue.out"
	run --separate-stderr unde-demo --root "$R" --step voice
	assert_failure 66
	[[ $stderr == *"step voice failed"*"run the dialogue step first"* ]]
	[[ $stderr == *"$R/demo/voice.log"* ]]
	run --separate-stderr unde-demo --step nosuch
	assert_failure 64
	[[ $stderr == *"unknown step: nosuch"* ]]
	run -0 unde-demo --help
	assert_output --partial 'recognition'
}

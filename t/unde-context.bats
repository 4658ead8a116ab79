#!/usr/bin/env bats
# unde-context: the Context Agent (spec §15), over a real PostgreSQL with
# production's malls, stores and events, the WeatherAPI fake, and libnova's
# sunsets checked against PyEphem and Astral (Debian's python3-ephem and
# python3-astral) as independent references.

load lib/common
load lib/pg
load lib/httpd

BATS_NO_PARALLELIZE_WITHIN_FILE=true
PY=/usr/bin/python3

setup_file() {
	fake_start weather weather.py
	export WEATHER_API_URL=$FAKE_WEATHER_URL/v1
	pg_start
	PROD_URL=$(pg_migrated_db prod production)
	export PROD_URL
	psql -q -v ON_ERROR_STOP=1 "$PROD_URL" <<'SQL'
INSERT INTO malls (id, name, city, country, timezone, latitude, longitude, radius_m, opening_hours) VALUES
 ('dubai-hills-mall', 'Dubai Hills Mall', 'Dubai', 'AE', 'Asia/Dubai', 25.1025, 55.2438, 400,
  '{"mon":["10:00","22:00"],"tue":["10:00","22:00"],"wed":["10:00","22:00"],"thu":["10:00","22:00"],"fri":["10:00","24:00"],"sat":["10:00","01:00"],"sun":["10:00","22:00"]}'),
 ('mega-almaty', 'MEGA Alma-Ata', 'Almaty', 'KZ', 'Asia/Almaty', 43.2018, 76.8921, 300,
  '{"mon":["10:00","22:00"],"tue":["10:00","22:00"],"wed":["10:00","22:00"],"thu":["10:00","22:00"],"fri":["10:00","22:00"],"sat":["10:00","22:00"],"sun":["10:00","22:00"]}');
INSERT INTO stores (id, mall_id, name, brand, category, floor, latitude, longitude) VALUES
 ('zara-ground-floor', 'dubai-hills-mall', 'Zara', 'Zara', 'fashion', 1, 25.1026, 55.2439),
 ('reel-cinemas', 'dubai-hills-mall', 'Reel Cinemas', NULL, 'cinema', 2, 25.1030, 55.2445),
 ('bakery', 'dubai-hills-mall', 'Bakery', NULL, 'food', 0, 25.1020, 55.2430),
 ('massimo-almaty', 'mega-almaty', 'Massimo Dutti', 'Massimo Dutti', 'fashion', 1, 43.2019, 76.8922);
INSERT INTO events (mall_id, store_id, type, title, discount, tags, starts_at, ends_at) VALUES
 ('dubai-hills-mall', 'zara-ground-floor', 'sale', NULL, '30%', '{}', '2026-02-10 00:00+04', '2026-02-20 00:00+04'),
 ('dubai-hills-mall', 'reel-cinemas', 'premiere', 'New Korean thriller', NULL, '{korean_thrillers}', '2026-02-13 17:00+04', '2026-02-13 19:30+04'),
 ('dubai-hills-mall', 'bakery', 'sale', 'Gluten-free week', '10%', '{gluten_free}', '2026-02-01 00:00+04', NULL),
 ('dubai-hills-mall', 'bakery', 'festival', 'Pastry festival', NULL, '{korean_thrillers,contains_gluten}', '2026-02-01 00:00+04', NULL),
 ('dubai-hills-mall', 'zara-ground-floor', 'sale', 'Old sale', '50%', '{}', '2025-01-01 00:00+04', '2025-01-10 00:00+04');
SQL
}

teardown_file() { pg_teardown_file; }

setup() {
	fake_reset weather
	W=$(mktemp -d "${BATS_TEST_TMPDIR:-/tmp}/ctx.XXXXXX")
	export WEATHER_CACHE_DIR=$W/cache PRODUCTION_DB_URL=$PROD_URL WEATHER_API_KEY=test-key UNDE_COUNTERS_DIR=$W
	PREFS='{"favorite_brands":["Zara","Massimo Dutti"],"allergies":["gluten"],"interests":["korean_thrillers"]}'
}

# ctx JSON: the context_frame of one record.
ctx() { unde-context <<<"$1" 2>/dev/null | jq -c .context_frame; }

@test "unde-context --help and --version answer and exit 0" {
	run -0 unde-context --help
	assert_output --partial unde-context
	run -0 unde-context --version
}

@test "a fix inside a mall gives the spec's context_frame: mall, nearest store, floor, weather, time" {
	run -0 ctx "{\"user_id\":\"u1\",\"lat\":25.1026,\"lng\":55.2439,\"at\":\"2026-02-13T19:30:00+04:00\",\"compact_preferences\":$PREFS}"
	jq_e '(.context_frame_id|test("^[0-9a-f-]{36}$")) and .timestamp == "2026-02-13T19:30:00+04:00"
		and .location == {"type":"mall","mall_id":"dubai-hills-mall","mall_name":"Dubai Hills Mall","near_store":"zara-ground-floor","floor":1}
		and .environment.weather.temp_c == 28 and .environment.weather.feels_like_c == 31
		and .environment.weather.humidity == 65 and .environment.weather.condition == "clear"
		and (.environment.weather.sunset|test("^1[78]:[0-5][0-9]$"))
		and .environment.time_context == {"day_of_week":"friday","part_of_day":"evening","mall_closes_in_hours":4.5,"mall_open":true,"is_rush_hour":true,"is_weekend":false}
		and (.cultural|has("sensitivity_level") and has("active_period") and has("next_meal_break") and has("is_pre_meal_break") and has("nearby_holidays"))
		and (.opportunities|type == "array")' <<<"$output"
	run -0 fake_requests weather
	jq_e 'length == 1 and .[0].path == "/v1/current.json" and .[0].args.key == "test-key"
		and .[0].args.q == "25.1026,55.2439"' <<<"$output"
}

@test "a point outside every mall says so, with the nearest mall and its distance" {
	run -0 ctx '{"lat":25.2048,"lng":55.2708,"at":"2026-02-13T12:00:00Z"}'
	# Dubai Hills Mall is about 12 km from Downtown Dubai
	jq_e '.location.type == "outside_mall" and .location.nearest_mall_id == "dubai-hills-mall"
		and .location.distance_m > 11000 and .location.distance_m < 14000
		and .opportunities == [] and .timestamp == "2026-02-13T16:00:00+04:00"' <<<"$output"
}

@test "mall_id names the mall without a fix; an unknown one is refused" {
	run -0 ctx '{"mall_id":"mega-almaty","at":"2025-06-01T12:00:00Z"}'
	jq_e '.location.mall_id == "mega-almaty" and .timestamp == "2025-06-01T17:00:00+05:00"' <<<"$output"
	run -65 --separate-stderr unde-context <<<'{"mall_id":"nowhere"}'
	[[ $stderr == *'"code":"unknown_mall"'* ]]
}

@test "Almaty is UTC+5 after 2024-03-01 and was UTC+6 before" {
	run -0 ctx '{"lat":43.2019,"lng":76.8922,"at":"2025-01-15T12:00:00Z"}'
	jq_e '.timestamp == "2025-01-15T17:00:00+05:00"' <<<"$output"
	run -0 ctx '{"lat":43.2019,"lng":76.8922,"at":"2024-01-15T12:00:00Z"}'
	jq_e '.timestamp == "2024-01-15T18:00:00+06:00"' <<<"$output"
}

@test "the weather cache is shared by two processes and expires after WEATHER_CACHE_TTL" {
	local rec='{"lat":25.1026,"lng":55.2439}'
	UNDE_METRICS_DIR=$W run -0 ctx "$rec"
	UNDE_METRICS_DIR=$W run -0 ctx "$rec"
	jq_e '.environment.weather.temp_c == 28' <<<"$output"
	run -0 fake_requests weather
	jq_e 'length == 1' <<<"$output"
	grep -q '^context_agent_weather_cache_hit_total{result="hit"} 1$' "$W/unde-context.prom"
	grep -q '^context_agent_weather_cache_hit_total{result="miss"} 1$' "$W/unde-context.prom"
	ls "$W/cache" | grep -qx 'weather-25.10_55.24.json'
	WEATHER_CACHE_TTL=0 run -0 ctx "$rec"
	run -0 fake_requests weather
	jq_e 'length == 2' <<<"$output"
}

@test "weather failures, garbage and no key leave weather null with a reason, never a failed frame" {
	fake_fail weather '{"mode":"500"}'
	run -0 ctx '{"lat":25.1026,"lng":55.2439}'
	jq_e '.environment.weather == null and .environment.weather_unavailable == "http_500"
		and (.environment.sunset|test("^[0-9]{2}:[0-9]{2}$"))' <<<"$output"
	fake_config weather '{"current":{"humidity":150}}'
	run -0 ctx '{"lat":25.1026,"lng":55.2439}'
	jq_e '.environment.weather_unavailable == "bad_answer"' <<<"$output"
	fake_fail weather '{"mode":"slow","delay_ms":2000}'
	WEATHER_TIMEOUT_MS=200 run -0 ctx '{"lat":25.1026,"lng":55.2439}'
	jq_e '.environment.weather_unavailable == "timeout"' <<<"$output"
	WEATHER_API_KEY= run -0 ctx '{"lat":25.1026,"lng":55.2439}'
	jq_e '.environment.weather_unavailable == "no_key"' <<<"$output"
	WEATHER_API_KEY=wrong run -0 ctx '{"lat":25.1026,"lng":55.2439}'
	jq_e '.environment.weather_unavailable == "http_401"' <<<"$output"
}

@test "sunsets of Dubai, Almaty and Astana are within 2 minutes of PyEphem and Astral" {
	local city lat lng tz date got ref n=0
	while read -r city lat lng tz date; do
		got=$(PRODUCTION_DB_URL= WEATHER_API_KEY= ctx "{\"lat\":$lat,\"lng\":$lng,\"timezone\":\"$tz\",\"at\":\"${date}T09:00:00Z\"}" |
			jq -r .environment.sunset)
		ref=$(TZ=$tz $PY - "$lat" "$lng" "$date" <<'PY'
import sys, datetime, calendar, time, ephem, astral
lat, lng, date = sys.argv[1], sys.argv[2], sys.argv[3]
y, m, d = map(int, date.split("-"))
o = ephem.Observer(); o.lat, o.lon = lat, lng; o.pressure = 0; o.horizon = "-0:34"
o.date = ephem.Date(datetime.datetime(y, m, d, 0, 0) - datetime.timedelta(hours=6))
e = calendar.timegm(o.next_setting(ephem.Sun()).datetime().timetuple())
a = calendar.timegm(astral.Astral().sunset_utc(datetime.date(y, m, d), float(lat), float(lng)).timetuple())
print(int(e), int(a), time.strftime("%H:%M", time.localtime(e)))
PY
)
		read -r e a hm <<<"$ref"
		# our HH:MM against each reference, in minutes (the day of the reference)
		local mine=$(( 10#${got%%:*} * 60 + 10#${got##*:} ))
		local er=$(TZ=$tz date -d "@$e" +%H:%M) ar=$(TZ=$tz date -d "@$a" +%H:%M)
		local em=$(( 10#${er%%:*} * 60 + 10#${er##*:} )) am=$(( 10#${ar%%:*} * 60 + 10#${ar##*:} ))
		echo "# $city $date: libnova $got, ephem $er, astral $ar" >&3
		(( mine - em <= 2 && em - mine <= 2 && mine - am <= 2 && am - mine <= 2 ))
		n=$((n + 1))
	done <<'CITIES'
Dubai 25.2048 55.2708 Asia/Dubai 2025-03-01
Dubai 25.2048 55.2708 Asia/Dubai 2026-02-20
Dubai 25.2048 55.2708 Asia/Dubai 2026-06-21
Almaty 43.2389 76.8897 Asia/Almaty 2025-03-15
Almaty 43.2389 76.8897 Asia/Almaty 2026-12-21
Astana 51.1694 71.4491 Asia/Almaty 2026-03-01
Astana 51.1694 71.4491 Asia/Almaty 2026-06-21
CITIES
	((n == 7))
}

@test "during Ramadan next_meal_break is today's sunset; outside it there is none" {
	run -0 ctx '{"lat":25.1026,"lng":55.2439,"at":"2026-02-25T16:30:00+04:00"}'
	jq_e '.cultural.active_period == "ramadan" and .cultural.next_meal_break == .environment.sunset
		and .cultural.is_pre_meal_break and .cultural.timing.avoid_daytime_food' <<<"$output"
	run -0 ctx '{"lat":25.1026,"lng":55.2439,"at":"2026-04-25T16:30:00+04:00"}'
	jq_e '.cultural.active_period == null and .cultural.next_meal_break == null
		and .cultural.is_pre_meal_break == false and .cultural.timing == null' <<<"$output"
	run -0 ctx '{"lat":25.1026,"lng":55.2439,"at":"2026-02-25T20:30:00+04:00"}'
	jq_e '.cultural.active_period == "ramadan" and (.cultural.is_pre_meal_break|not)
		and (.cultural.timing.avoid_daytime_food|not)' <<<"$output"
}

@test "sensitivity high names iftar, medium says next_meal_break only, low only adjusts timing" {
	local at='"at":"2026-02-25T17:30:00+04:00"'
	run -0 ctx "{\"lat\":25.1026,\"lng\":55.2439,$at,\"compact_preferences\":{\"cultural_sensitivity_level\":\"high\"}}"
	jq_e '.cultural | .mention == "explicit" and .iftar_time == .next_meal_break
		and (.hint|test("^До ифтара [0-9]+ мин$"))' <<<"$output"
	run -0 ctx "{\"lat\":25.1026,\"lng\":55.2439,$at}"
	jq_e '.cultural | .sensitivity_level == "medium" and .mention == "neutral" and (has("iftar_time")|not)
		and .next_meal_break != null and .hint == "Рестораны откроются после \(.next_meal_break)"' <<<"$output"
	refute_output --partial iftar
	run -0 ctx "{\"lat\":25.1026,\"lng\":55.2439,$at,\"compact_preferences\":{\"cultural_sensitivity_level\":\"low\"}}"
	jq_e '.cultural | .mention == "none" and .next_meal_break == null and .hint == null
		and (has("iftar_time")|not) and .timing.avoid_daytime_food and .timing.food_after != null' <<<"$output"
	refute_output --partial iftar
	run -65 --separate-stderr unde-context <<<'{"lat":25.1,"lng":55.2,"compact_preferences":{"cultural_sensitivity_level":"max"}}'
	[[ $stderr == *cultural_sensitivity_level* ]]
}

@test "holidays of the mall's country within a week are listed, and weekends by country" {
	run -0 ctx '{"lat":25.1026,"lng":55.2439,"at":"2026-11-29T12:00:00+04:00"}'
	jq_e '.cultural.nearby_holidays | map(.name) | index("national_day") != null and index("commemoration_day") != null' <<<"$output"
	jq_e '.environment.time_context | .day_of_week == "sunday" and .is_weekend' <<<"$output"
	run -0 ctx '{"lat":43.2019,"lng":76.8922,"at":"2026-03-19T12:00:00+05:00"}'
	jq_e '.cultural.nearby_holidays | map(.name) | index("nauryz") != null' <<<"$output"
	run -0 ctx '{"lat":43.2019,"lng":76.8922,"at":"2026-03-19T12:00:00+05:00","timezone":"Asia/Riyadh"}'
	jq_e '.timestamp == "2026-03-19T12:00:00+05:00"' <<<"$output"
}

@test "hours to closing follow the mall's hours, past midnight too" {
	run -0 ctx '{"lat":25.1026,"lng":55.2439,"at":"2026-02-14T23:30:00+04:00"}'
	# Saturday 10:00-01:00
	jq_e '.environment.time_context | .mall_closes_in_hours == 1.5 and .mall_open and .part_of_day == "night"' <<<"$output"
	run -0 ctx '{"lat":25.1026,"lng":55.2439,"at":"2026-02-15T00:30:00+04:00"}'
	jq_e '.environment.time_context | .mall_closes_in_hours == 0.5 and .mall_open' <<<"$output"
	run -0 ctx '{"lat":25.1026,"lng":55.2439,"at":"2026-02-16T08:00:00+04:00"}'
	jq_e '.environment.time_context | .mall_closes_in_hours == 0 and (.mall_open|not) and .part_of_day == "morning" and (.is_rush_hour|not)' <<<"$output"
}

@test "events crossed with compact_preferences give opportunities with their reason" {
	run -0 ctx "{\"lat\":25.1026,\"lng\":55.2439,\"at\":\"2026-02-13T17:30:00+04:00\",\"compact_preferences\":$PREFS}"
	jq_e '.opportunities | map({store, type, relevance_reason, discount, title}) == [
		{"store":"Bakery","type":"sale","relevance_reason":"suits_allergy_gluten","discount":"10%","title":"Gluten-free week"},
		{"store":"Zara","type":"sale","relevance_reason":"user_favorite_brand","discount":"30%","title":null},
		{"store":"Reel Cinemas","type":"premiere","relevance_reason":"user_loves_korean_thrillers","discount":null,"title":"New Korean thriller"}]' <<<"$output"
	# no preferences, no opportunities; an ended premiere is gone
	run -0 ctx '{"lat":25.1026,"lng":55.2439,"at":"2026-02-13T17:30:00+04:00"}'
	jq_e '.opportunities == []' <<<"$output"
	run -0 ctx "{\"lat\":25.1026,\"lng\":55.2439,\"at\":\"2026-02-21T17:30:00+04:00\",\"compact_preferences\":$PREFS}"
	jq_e '.opportunities | map(.relevance_reason) == ["suits_allergy_gluten"]' <<<"$output"
}

@test "bad input is refused with the field named and the stream goes on" {
	run -65 --separate-stderr unde-context <<<$'{"lat":200,"lng":1}\n{"user_id":"u"}\n{"lat":1,"lng":2,"at":"yesterday"}\n{"lat":25.1026,"lng":55.2439}'
	assert_equal "${#lines[@]}" 1
	[[ $stderr == *'field lat'* && $stderr == *'lat and lng'* && $stderr == *'field at'* ]]
}

@test "POST /context through unde-httpd answers a context_frame" {
	httpd_serve context "$UNDE_TOP_SRCDIR/etc/httpd/context.routes" \
		PRODUCTION_DB_URL="$PROD_URL" WEATHER_API_URL="$WEATHER_API_URL" \
		WEATHER_API_KEY=test-key WEATHER_CACHE_DIR="$W/cache" -- --metrics-file "$W/httpd.metrics"
	run curl -s --max-time 10 -d "{\"user_id\":\"u1\",\"lat\":25.1025,\"lng\":55.2438,\"mall_id\":\"dubai-hills-mall\",\"compact_preferences\":$PREFS}" \
		"http://127.0.0.1:$CONTEXT_PORT/context"
	httpd_stop context
	assert_success
	jq_e '.context_frame.location.mall_id == "dubai-hills-mall" and .context_frame.environment.weather.temp_c == 28' <<<"$output"
}

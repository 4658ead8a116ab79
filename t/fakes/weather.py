#!/usr/bin/env python3
"""weather — fake WeatherAPI.com: GET /v1/current.json and /v1/astronomy.json.

Auth `?key=test-key`: missing → 401/1002, wrong → 401/2006 (WeatherAPI's
own error table); `q` must be "lat,lon" (400/1003 when missing, 400/1006
when unparsable). `config["current"]` is merged into the answer's
"current" object, so tests can set temperatures, an out-of-range humidity
or a missing field. Failures (429, 500, slow, malformed) come from
fakelib's rules (README.md).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fakelib import Abort, Fake  # noqa: E402

fake = Fake("weather", config={"key": "test-key", "current": {}})


def check(req):
    key = req.args.get("key")
    if not key:
        raise Abort(401, {"error": {"code": 1002, "message": "API key is invalid or not provided."}})
    if key != fake.config["key"]:
        raise Abort(401, {"error": {"code": 2006, "message": "API key provided is invalid"}})
    q = req.args.get("q")
    if not q:
        raise Abort(400, {"error": {"code": 1003, "message": "Parameter q is missing."}})
    try:
        lat, lon = (float(x) for x in q.split(","))
    except ValueError:
        raise Abort(400, {"error": {"code": 1006, "message": "No matching location found."}})
    return lat, lon


def location(lat, lon):
    now = int(time.time())
    return {"name": "Fake", "region": "", "country": "Fake", "lat": round(lat, 2),
            "lon": round(lon, 2), "tz_id": "UTC", "localtime_epoch": now,
            "localtime": time.strftime("%Y-%m-%d %H:%M", time.gmtime(now))}


@fake.route("GET", r"/v1/current\.json")
def current(req):
    lat, lon = check(req)
    cur = {"last_updated": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "temp_c": 28.0,
           "temp_f": 82.4, "is_day": 1,
           "condition": {"text": "Sunny", "icon": "//cdn.weatherapi.com/weather/64x64/day/113.png",
                         "code": 1000},
           "wind_kph": 11.2, "humidity": 65, "cloud": 0, "feelslike_c": 31.0,
           "feelslike_f": 87.8, "uv": 7.0}
    cur.update(fake.config["current"])
    return 200, {}, {"location": location(lat, lon), "current": cur}


@fake.route("GET", r"/v1/astronomy\.json")
def astronomy(req):
    lat, lon = check(req)
    return 200, {}, {"location": location(lat, lon),
                     "astronomy": {"astro": {"sunrise": "06:45 AM", "sunset": "06:15 PM",
                                             "moonrise": "05:12 AM", "moonset": "08:30 PM",
                                             "moon_phase": "Waxing Crescent",
                                             "moon_illumination": 20, "is_moon_up": 0,
                                             "is_sun_up": 1}}}


fake.error_body = lambda req, status, msg: ({}, {"error": {"code": 9999, "message": msg}})

if __name__ == "__main__":
    sys.exit(fake.main())

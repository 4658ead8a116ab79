/* options.c — the one argv parser; see options.h. */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "log.h"
#include "options.h"
#include "util.h"

/* getopt values: OPTIONS_VAL + the entry's position over all tables, so
 * entries of different tables never collide whatever their ids. */
#define OPTIONS_VAL 0x10000

int options_usage_error(const char *cmd, const char *msg)
{
	log_event(LOG_ERROR, msg, json_pack("{s:i}", "exit", EX_USAGE));
	fprintf(stderr, "Try '%s --help'.\n", cmd);
	return EX_USAGE;
}

/* Store one option's value where its entry says, then call on_option.
 * 0, or -1 after logging which option was wrong. */
static int options_take(const char *cmd, const struct options_table *t,
			const struct filter_option *o, const char *arg)
{
	if (o->number) {
		long long v;
		enum num_status st = util_parse_long(arg, o->min, o->max, &v);
		if (st != NUM_OK) {
			char msg[160];
			snprintf(msg, sizeof msg, "invalid value for --%s: %s (want %lld to %lld)",
				 o->name, util_num_status_text(st), o->min, o->max);
			log_event(LOG_ERROR, msg,
				  json_pack("{s:s, s:s, s:s, s:I, s:I, s:i}", "option", o->name,
					    "value", arg, "error", util_num_status_text(st), "min",
					    (json_int_t)o->min, "max", (json_int_t)o->max, "exit",
					    EX_USAGE));
			fprintf(stderr, "Try '%s --help'.\n", cmd);
			return -1;
		}
		*o->number = v;
	}
	if (o->flag)
		*o->flag = 1;
	if (o->string)
		*o->string = arg;
	int id = o->id ? o->id : o->letter ? o->letter : (int)(o - t->options) + OPTIONS_ID_BASE;
	if (t->on_option && t->on_option(t->state, id, arg) != 0) {
		char msg[160];
		snprintf(msg, sizeof msg, "invalid value for --%s", o->name);
		log_event(LOG_ERROR, msg,
			  json_pack("{s:s, s:s?, s:i}", "option", o->name, "value", arg, "exit",
				    EX_USAGE));
		fprintf(stderr, "Try '%s --help'.\n", cmd);
		return -1;
	}
	return 0;
}

enum options_result options_parse(const char *cmd, const struct options_table *tables,
				  size_t ntables, enum options_order order, int argc, char **argv)
{
	size_t n = 0;
	for (size_t t = 0; t < ntables; t++)
		for (const struct filter_option *o = tables[t].options; o && o->name; o++)
			n++;
	struct option *longopts = xcalloc(n + 3, sizeof *longopts);
	/* which entry each getopt value stands for */
	const struct filter_option **entry = xcalloc(n + 1, sizeof *entry);
	const struct options_table **owner = xcalloc(n + 1, sizeof *owner);
	int by_letter[128];
	for (size_t i = 0; i < 128; i++)
		by_letter[i] = -1;
	struct buf shortopts = { 0 };
	buf_printf(&shortopts, "%s:hV", order == OPTIONS_IN_ORDER ? "+" : "");
	size_t k = 0;
	for (size_t t = 0; t < ntables; t++)
		for (const struct filter_option *o = tables[t].options; o && o->name; o++, k++) {
			assert(o->letter == 0 || (o->letter < 128 && isalnum(o->letter) &&
						  o->letter != 'h' && o->letter != 'V'));
			entry[k] = o;
			owner[k] = &tables[t];
			longopts[k] = (struct option){ o->name,
						       o->arg ? required_argument : no_argument, NULL,
						       OPTIONS_VAL + (int)k };
			if (o->letter && by_letter[o->letter] < 0) {
				by_letter[o->letter] = (int)k;
				buf_printf(&shortopts, "%c%s", o->letter, o->arg ? ":" : "");
			}
		}
	longopts[k++] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[k++] = (struct option){ "version", no_argument, NULL, 'V' };

	enum options_result res = OPTIONS_OK;
	int c;
	optind = 1;
	opterr = 0; /* ':' first: we name the option ourselves */
	while (res == OPTIONS_OK &&
	       (c = getopt_long(argc, argv, shortopts.data, longopts, NULL)) != -1) {
		int idx = -1;
		if (c >= OPTIONS_VAL && c < OPTIONS_VAL + (int)n)
			idx = c - OPTIONS_VAL;
		else if (c > 0 && c < 128 && c != 'h' && c != 'V' && c != '?' && c != ':')
			idx = by_letter[c];
		if (idx >= 0) {
			if (options_take(cmd, owner[idx], entry[idx], optarg) != 0)
				res = OPTIONS_USAGE;
			continue;
		}
		char msg[200];
		const char *given = argv[optind - 1] ? argv[optind - 1] : "";
		switch (c) {
		case 'h': res = OPTIONS_HELP; break;
		case 'V': printf("%s %s\n", cmd, PACKAGE_VERSION); res = OPTIONS_VERSION; break;
		case ':':
			snprintf(msg, sizeof msg, "option %.150s needs an argument", given);
			options_usage_error(cmd, msg);
			res = OPTIONS_USAGE;
			break;
		default:
			if (optopt && optopt < 128 && given[0] == '-' && given[1] != '-')
				snprintf(msg, sizeof msg, "unknown option -%c", optopt);
			else
				snprintf(msg, sizeof msg, "unknown option %.150s", given);
			options_usage_error(cmd, msg);
			res = OPTIONS_USAGE;
		}
	}
	free(longopts);
	free(entry);
	free(owner);
	buf_free(&shortopts);
	return res;
}

int options_main(const char *cmd, const struct options_table *tables, size_t ntables,
		 enum options_order order, int argc, char **argv, void (*usage)(FILE *f))
{
	switch (options_parse(cmd, tables, ntables, order, argc, argv)) {
	case OPTIONS_HELP: usage(stdout); return 0;
	case OPTIONS_VERSION: return 0;
	case OPTIONS_USAGE: return EX_USAGE;
	case OPTIONS_OK: break;
	}
	return -1;
}

void options_help(FILE *f, const struct filter_option *options)
{
	for (const struct filter_option *o = options; o && o->name; o++) {
		if (!o->help)
			continue;
		char head[96];
		if (o->letter)
			snprintf(head, sizeof head, "-%c, --%s%s%s", o->letter, o->name,
				 o->arg ? " " : "", o->arg ? o->arg : "");
		else
			snprintf(head, sizeof head, "--%s%s%s", o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
		if (strlen(head) > 20) /* a long head: its text on the next line */
			fprintf(f, "  %s\n%23s%s\n", head, "", o->help);
		else
			fprintf(f, "  %-20s %s\n", head, o->help);
	}
}

/* options.h — one option table for parsing argv and for writing --help.
 *
 * Every command describes its options once, as a { NULL }-terminated array
 * of struct filter_option: the long name, an optional letter, the
 * argument's name (NULL for a flag), the --help line, and where the value
 * goes (a bounded number through util_parse_long, a flag, a string) or an
 * id for a callback. options_parse() turns that into getopt_long calls; the
 * filter runner (lib/filter.h) and the commands that are not filters
 * (unde-db, unde-cleanup, unde-sync, unde-availability) share it, so there
 * is one parser and --help can never disagree with what is accepted.
 *
 *   static const char *env_file;
 *   static long long batch;
 *   static const struct filter_option opts[] = {
 *           { "batch", 'b', "N", "rows per statement (1-10000)",
 *             .number = &batch, .min = 1, .max = 10000 },
 *           { "env-file", 0, "FILE", "read KEY=VALUE settings", .string = &env_file },
 *           { 0 } };
 *   const struct options_table t[] = { { opts, NULL, NULL } };
 *   switch (options_parse("unde-x", t, 1, OPTIONS_PERMUTE, argc, argv)) {
 *   case OPTIONS_HELP: usage(stdout); return 0;   // prints options_help()
 *   case OPTIONS_VERSION: return 0;
 *   case OPTIONS_USAGE: return EX_USAGE;
 *   case OPTIONS_OK: break;                         // operands from optind
 *   } */
#ifndef UNDE_OPTIONS_H
#define UNDE_OPTIONS_H

#include <stdio.h>

/* One option: its getopt entry, its --help line and where it goes. The
 * parser stores what it can (number, flag, string) and then calls the
 * table's on_option(state, id, arg) when there is one. */
struct filter_option {
	const char *name;  /* long name without "--" */
	int letter;        /* short option letter, or 0 */
	const char *arg;   /* the argument's name in --help ("N"), or NULL: a flag */
	const char *help;  /* one line for --help (continuation lines indented 23
			      spaces); NULL: not listed */
	int id;            /* for on_option; 0: the letter, else the table index
			      + OPTIONS_ID_BASE */
	long long *number; /* parsed with bounds [min, max] (util_parse_long) */
	long long min, max;
	int *flag;           /* set to 1 when given */
	const char **string; /* set to the argument */
};

/* The id an entry with neither id nor letter is given: its index plus this. */
#define OPTIONS_ID_BASE 0x6000

/* A table with its callback. on_option may be NULL; it returns 0, or -1
 * when the value is not acceptable (a usage error naming the option). */
struct options_table {
	const struct filter_option *options;
	int (*on_option)(void *state, int id, const char *arg);
	void *state;
};

enum options_result {
	OPTIONS_OK = 0,  /* parsed; operands start at optind */
	OPTIONS_HELP,    /* -h/--help: the caller prints its usage, exits 0 */
	OPTIONS_VERSION, /* -V/--version: printed "<cmd> <version>", exit 0 */
	OPTIONS_USAGE,   /* a usage error, logged with the option's name: exit 64 */
};

/* How options_parse treats operands. */
enum options_order {
	OPTIONS_PERMUTE = 0, /* options may follow operands (getopt's default) */
	OPTIONS_IN_ORDER,    /* stop at the first operand ("+"): a filter, or a
				subcommand that has options of its own */
};

/* Parse argv (from argv[1], optind reset) against the tables in order;
 * -h/--help and -V/--version are built in. A bad value is
 * logged as "invalid value for --NAME: …" with option, value and bounds,
 * followed by "Try '<cmd> --help'." on stderr. */
enum options_result options_parse(const char *cmd, const struct options_table *tables,
				  size_t ntables, enum options_order order, int argc, char **argv);

/* options_parse, then what a command does with its result: on --help
 * usage(stdout), and exit 0 after --help or --version, 64 after a usage
 * error. Returns -1 to go on (operands from optind), else the exit status:
 *   int rc = options_main("unde-x", t, 1, OPTIONS_PERMUTE, argc, argv, usage);
 *   if (rc >= 0)
 *           return rc; */
int options_main(const char *cmd, const struct options_table *tables, size_t ntables,
		 enum options_order order, int argc, char **argv, void (*usage)(FILE *f));

/* Write the --help lines of a table ("  -k, --top-k N       text"),
 * without a heading; entries without help are left out. A name and
 * argument longer than the 20-column head get their text on the next
 * line, indented like continuation lines (23 spaces). */
void options_help(FILE *f, const struct filter_option *options);

/* A usage error of the caller's own (a bad operand, options that do not go
 * together): logs msg with exit 64, prints "Try '<cmd> --help'." and
 * returns EX_USAGE (64). */
int options_usage_error(const char *cmd, const char *msg);

#endif

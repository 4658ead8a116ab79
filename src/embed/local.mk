# unde-embed: embeddings and memory snippets for the chat history (issue 13).
bin_PROGRAMS += src/unde-embed
src_unde_embed_SOURCES = src/embed/main.c src/embed/snippet.c \
	src/embed/store.c src/embed/embed.h
src_unde_embed_LDADD = $(UNDE_LIBS) $(STEMMER_LIBS)
dist_man_MANS += man/unde-embed.1
TESTS += t/unde-embed.bats

# etc rules

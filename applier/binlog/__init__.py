"""The binlog format, read only: event framing and types, positions and GTIDs, TableMaps,
row images -> SQL literals, whole transactions; and which implementation (native or
Python) decodes them."""

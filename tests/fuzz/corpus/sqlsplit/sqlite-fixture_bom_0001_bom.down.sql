DROP TABLE bom_t;

public enum EdgeBufferPlaceholder {}

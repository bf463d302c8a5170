package es9node;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.miscellaneous.RemoveDuplicatesTokenFilter;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Stand-ins for the three analysis-common components that x-pack-security's .security index settings need
 * (analyzer "email": tokenizer uax_url_email, filters pattern_capture + lowercase + unique). Built on Lucene's
 * lucene-analysis-common, which is on Maven Central.
 */
public class AnalysisStandInPlugin extends Plugin implements AnalysisPlugin {
    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        return Map.of("uax_url_email", (indexSettings, env, name, settings) -> TokenizerFactory.newFactory(name, UAX29URLEmailTokenizer::new));
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        return Map.of(
            "pattern_capture", (indexSettings, env, name, settings) -> {
                boolean preserve = settings.getAsBoolean("preserve_original", true);
                List<String> ps = settings.getAsList("patterns");
                Pattern[] patterns = ps.stream().map(Pattern::compile).toArray(Pattern[]::new);
                return filter(name, ts -> new PatternCaptureGroupTokenFilter(ts, preserve, patterns));
            },
            // approximation of ES "unique" (only_on_same_position=false drops repeats across positions)
            "unique", (indexSettings, env, name, settings) -> filter(name, RemoveDuplicatesTokenFilter::new)
        );
    }

    private static TokenFilterFactory filter(String name, java.util.function.Function<TokenStream, TokenStream> f) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream tokenStream) {
                return f.apply(tokenStream);
            }
        };
    }
}
